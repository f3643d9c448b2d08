/** `switchyard serve | node | bench`. */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { demoConfig } from '../config/demo.js';
import type { Config } from '../config/schema.js';
import { Gateway } from '../gateway.js';
import { validateConfig } from '../config/load.js';
import { registerNodeCommand } from './node-command.js';
import { registerBenchCommand } from './bench-command.js';
import { registerFederationCommands } from './federation-commands.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

function withServer(config: Readonly<Config>, patch: Record<string, unknown>): Readonly<Config> {
  if (Object.keys(patch).length === 0) return config;
  return validateConfig({ ...config, server: { ...config.server, ...patch } });
}

interface ServeOptions {
  config?: string;
  demo?: boolean;
  port?: number;
  host?: string;
  region?: string;
  allowJsFallback?: boolean;
  federate?: boolean;
  nats?: string;
  natsPrefix?: string;
  natsToken?: string;
  natsUser?: string;
  natsPassword?: string;
  natsNkeySeed?: string;
  natsCreds?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
}

/**
 * `--nats*` flags over the config's `cluster:` section. A credential flag replaces whatever
 * credential the file named (a cluster takes one), so a flag always wins.
 */
function withCluster(config: Readonly<Config>, opts: ServeOptions): Readonly<Config> {
  const credential = {
    ...(opts.natsToken === undefined ? {} : { token: opts.natsToken }),
    ...(opts.natsUser === undefined ? {} : { user: opts.natsUser }),
    ...(opts.natsPassword === undefined ? {} : { password: opts.natsPassword }),
    ...(opts.natsNkeySeed === undefined ? {} : { nkey_seed_file: opts.natsNkeySeed }),
    ...(opts.natsCreds === undefined ? {} : { creds_file: opts.natsCreds }),
  };
  const tls = opts.natsTlsCa || opts.natsTlsCert || opts.natsTlsKey
    ? { ...(opts.natsTlsCa ? { ca_file: opts.natsTlsCa } : {}), ...(opts.natsTlsCert ? { cert_file: opts.natsTlsCert } : {}), ...(opts.natsTlsKey ? { key_file: opts.natsTlsKey } : {}) }
    : undefined;
  const flagged = opts.nats !== undefined || opts.natsPrefix !== undefined || Object.keys(credential).length > 0 || tls !== undefined;
  if (!flagged) return config;
  const base: Record<string, unknown> = { ...(config.cluster ?? {}) };
  if (Object.keys(credential).length > 0) for (const key of ['token', 'user', 'password', 'nkey_seed_file', 'creds_file']) delete base[key];
  const cluster = {
    ...base,
    ...credential,
    ...(opts.nats === undefined ? {} : { nats: opts.nats }),
    ...(opts.natsPrefix === undefined ? {} : { prefix: opts.natsPrefix }),
    ...(tls ? { tls } : {}),
  };
  if (!('nats' in cluster)) throw new ConfigError('--nats-* options need --nats <url> (or a cluster: section in the config)');
  return validateConfig({ ...config, cluster });
}

async function serve(opts: ServeOptions): Promise<void> {
  if (!opts.config && !opts.demo && !opts.nats) {
    throw new ConfigError('nothing to serve: give --config <file.yaml>, --demo for the demo endpoints, or --nats <url> to serve a federation\'s deployment');
  }
  // `--nats` alone: a federated gateway serving whatever is deployed in the cluster.
  const federate = opts.federate === true || (!opts.config && !opts.demo);
  let config = opts.config ? loadConfigFile(opts.config) : opts.demo ? demoConfig() : validateConfig({ endpoints: {} });
  const patch: Record<string, unknown> = {};
  if (opts.allowJsFallback) patch.allow_js_fallback = true;
  if (opts.region !== undefined) patch.region = opts.region;
  config = withCluster(withServer(config, patch), opts);
  if (federate) {
    if (!config.cluster) throw new ConfigError('--federate needs --nats <url> (or a cluster: section in the config)');
    if (!config.cluster.federation) config = validateConfig({ ...config, cluster: { ...config.cluster, federation: {} } });
  }
  const gateway = await Gateway.start(config, { port: opts.port, host: opts.host });
  // The address really bound; on every interface, also one that reaches it from this machine.
  const host = opts.host ?? config.server.host;
  const bound = `http://${host.includes(':') ? `[${host}]` : host}:${gateway.port}`;
  const everyInterface = host === '0.0.0.0' || host === '::';
  const base = everyInterface ? `http://127.0.0.1:${gateway.port}` : bound;
  console.log(`switchyard listening on ${bound}${everyInterface ? ` (every interface; from this machine: ${base})` : ''}`);
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
  .option('--region <name>', 'the region this gateway stands in (overrides server.region)')
  .option('--federate', "join a federation: store this config's endpoints in the cluster and serve the shared deployment (implied by --nats without --config)")
  .option('--nats <url>', 'join node agents through NATS (overrides cluster.nats; comma-separated servers)')
  .option('--nats-prefix <prefix>', 'subject prefix shared with the nodes (overrides cluster.prefix)')
  .option('--nats-token <token>', 'NATS token')
  .option('--nats-user <user>', 'NATS user')
  .option('--nats-password <password>', 'NATS password')
  .option('--nats-nkey-seed <file>', 'file holding an nkey user seed')
  .option('--nats-creds <file>', 'NATS .creds file')
  .option('--nats-tls-ca <file>', 'CA to verify the NATS server (enables TLS)')
  .option('--nats-tls-cert <file>', 'client certificate for TLS')
  .option('--nats-tls-key <file>', 'client key for TLS')
  .action(serve);

registerNodeCommand(program);
registerBenchCommand(program);
registerFederationCommands(program);

program.parseAsync(process.argv).catch((err: Error & { code?: string }) => {
  console.error(`switchyard: ${err.message}`);
  process.exit(err.code === 'SY_CONFIG_INVALID' || err.code === 'SY_NATS_OPTIONS' || err.code === 'SY_NODE_OPTIONS' ? 2 : 1);
});
