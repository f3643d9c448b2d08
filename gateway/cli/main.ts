/** `switchyard serve | node | bench`. */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { demoConfig } from '../config/demo.js';
import type { Config } from '../config/schema.js';
import { Gateway } from '../gateway.js';
import { validateConfig } from '../config/load.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

function withServer(config: Readonly<Config>, patch: Record<string, unknown>): Readonly<Config> {
  if (Object.keys(patch).length === 0) return config;
  return validateConfig({ ...config, server: { ...config.server, ...patch } });
}

async function serve(opts: { config?: string; demo?: boolean; port?: number; host?: string; allowJsFallback?: boolean }): Promise<void> {
  if (!opts.config && !opts.demo) {
    throw new ConfigError('nothing to serve: give --config <file.yaml>, or --demo for the demo endpoints');
  }
  let config = opts.config ? loadConfigFile(opts.config) : demoConfig();
  const patch: Record<string, unknown> = {};
  if (opts.allowJsFallback) patch.allow_js_fallback = true;
  config = withServer(config, patch);
  const gateway = await Gateway.start(config, { port: opts.port, host: opts.host });
  const shown = (opts.host ?? config.server.host) === '0.0.0.0' ? '127.0.0.1' : (opts.host ?? config.server.host);
  const base = `http://${shown}:${gateway.port}`;
  console.log(`switchyard listening on ${base}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.log.info({ signal }, 'draining');
    gateway.shutdown().then(
      () => process.exit(0),
      (err: Error) => {
        gateway.log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const ready = await gateway.whenReady();
  if (!ready) {
    console.log(`not every endpoint is ready yet; see ${base}/readyz`);
    return;
  }
  const first = [...gateway.endpoints.keys()][0];
  console.log(`ready: ${[...gateway.endpoints.keys()].join(', ')}`);
  if (first === 'echo') {
    console.log(`try:  curl -s ${base}/inference/echo -H 'content-type: application/json' -d '{"text":"hello"}'`);
  } else if (first) {
    console.log(`try:  curl -s ${base}/inference/${first} -H 'content-type: application/json' -d '{}'`);
  }
}

const program = new Command('switchyard').description('A fast, dependable model-inference gateway.').showHelpAfterError();

program
  .command('serve')
  .description('serve the endpoints of a config file (or the demo endpoints)')
  .option('-c, --config <file>', 'YAML config file')
  .option('--demo', 'serve the built-in demo endpoints (echo, mlp, ...)')
  .option('-p, --port <n>', 'port to listen on (overrides server.port; 0 = any free port)', port)
  .option('--host <host>', 'address to listen on (overrides server.host)')
  .option('--allow-js-fallback', "serve even if uWebSockets.js's native binary did not load (slow)")
  .action(serve);

program.parseAsync(process.argv).catch((err: Error & { code?: string }) => {
  console.error(`switchyard: ${err.message}`);
  process.exit(err.code === 'SY_CONFIG_INVALID' ? 2 : 1);
});
