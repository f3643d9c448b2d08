#!/usr/bin/env node
// The `switchyard` command; the code is compiled to dist/ by `npm run build` (run by npm install).
import '../dist/gateway/cli/main.js';
