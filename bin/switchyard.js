#!/usr/bin/env node
// The `switchyard` command; the code is compiled to dist/ by `npm run build` (run by npm install).
// `bench` has a light entry of its own (gateway/cli/bench-main.ts); everything else goes to main.
await import(process.argv[2] === 'bench' ? '../dist/gateway/cli/bench-main.js' : '../dist/gateway/cli/main.js');
