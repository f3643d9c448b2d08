/** `switchyard node ...`: flags to NodeAgentOptions, then the agent runs until SIGTERM/SIGINT or until NATS closes for good. */
import type { Command } from 'commander';
import { DEFAULT_SUBJECT_PREFIX } from '../../workers/cluster/subjects.js';
// Validators that commander takes as its own (bench-options.ts loads no commander for them).
import { nonNegativeInteger, positiveInteger } from './bench-options.js';
// The agent (and NATS, piscina) loads when the command runs, not for every switchyard command.
const loadAgent = () => import('../../workers/node/agent.js');

/** Adds `switchyard node ...` to the CLI. */
export function registerNodeCommand(program: Command): Command {
  return program
    .command('node')
    .description('run a node agent: offer this machine\'s devices to gateways over NATS')
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .requiredOption('--region <name>', 'the region this machine is in')
    .option('--devices <list>', 'auto, or a comma list of cpu, cuda:N, coreml', 'auto')
    .option('--name <name>', 'node name (default: the host name)')
    .option('--token <token>', 'NATS token')
    .option('--user <user>', 'NATS user')
    .option('--password <password>', 'NATS password')
    .option('--nkey-seed <file>', 'file holding an nkey user seed')
    .option('--creds <file>', 'NATS .creds file')
    .option('--tls-ca <file>', 'CA to verify the NATS server (enables TLS)')
    .option('--tls-cert <file>', 'client certificate for TLS')
    .option('--tls-key <file>', 'client key for TLS')
    .option('--prefix <prefix>', 'subject prefix shared with the gateway', DEFAULT_SUBJECT_PREFIX)
    .option('--work-dir <dir>', 'artifact cache and output folder')
    .option('--max-replicas <n>', 'replicas this node hosts at once', positiveInteger)
    .option('--poll-us <µs>', 'µs a replica polls for its next request instead of sleeping, with a core to spare (0: never; default 200)', nonNegativeInteger)
    .action(async (o: Record<string, string | number | undefined>) => {
      const str = (k: string) => (o[k] === undefined ? undefined : String(o[k]));
      const tls = o.tlsCa || o.tlsCert || o.tlsKey ? { caFile: str('tlsCa'), certFile: str('tlsCert'), keyFile: str('tlsKey') } : undefined;
      const { runNodeAgent } = await loadAgent();
      const agent = await runNodeAgent({
        nats: String(o.nats),
        region: String(o.region),
        devices: str('devices'),
        name: str('name'),
        prefix: str('prefix'),
        token: str('token'),
        user: str('user'),
        password: str('password'),
        nkeySeedFile: str('nkeySeed'),
        credsFile: str('creds'),
        tls,
        workDir: str('workDir'),
        maxReplicas: o.maxReplicas === undefined ? undefined : Number(o.maxReplicas),
        pollUs: o.pollUs === undefined ? undefined : Number(o.pollUs),
        log: (message, fields) => console.log(JSON.stringify({ time: Date.now(), msg: message, ...fields })),
      });
      const stop = () => void agent.close().then(() => process.exit(0), () => process.exit(1));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      agent.connection.onStatus((status) => {
        if (status.type === 'closed' && !agent.isClosing) {
          console.error(`switchyard node: NATS connection closed${status.error ? `: ${status.error.message}` : ''}`);
          process.exit(1);
        }
      });
    });
}
