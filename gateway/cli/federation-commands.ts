/** `switchyard deploy` and `switchyard status`: write and read a federation's deployment in the cluster. */
import type { Command } from 'commander';
import { connectOptionsFromConfig } from '../cluster/connect-options.js';
import { loadConfigFile, validateConfig } from '../config/load.js';
import type { ClusterConfig } from '../config/schema.js';
import { DeploymentStore } from '../federation/deployment.js';
import { formatFederationStatus, readFederationStatus } from '../federation/status.js';
import { ClusterConnection } from '../../workers/cluster/connection.js';

interface NatsFlags {
  nats: string;
  natsPrefix?: string;
  natsToken?: string;
  natsUser?: string;
  natsPassword?: string;
  natsCreds?: string;
}

function natsOptions(command: Command): Command {
  return command
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .option('--nats-prefix <prefix>', 'subject prefix shared with gateways and nodes')
    .option('--nats-token <token>', 'NATS token')
    .option('--nats-user <user>', 'NATS user')
    .option('--nats-password <password>', 'NATS password')
    .option('--nats-creds <file>', 'NATS .creds file');
}

function clusterOf(flags: NatsFlags, base?: ClusterConfig): ClusterConfig {
  const cluster = {
    ...(base ?? {}),
    nats: flags.nats,
    ...(flags.natsPrefix ? { prefix: flags.natsPrefix } : {}),
    ...(flags.natsToken ? { token: flags.natsToken } : {}),
    ...(flags.natsUser ? { user: flags.natsUser } : {}),
    ...(flags.natsPassword ? { password: flags.natsPassword } : {}),
    ...(flags.natsCreds ? { creds_file: flags.natsCreds } : {}),
  };
  return validateConfig({ cluster, endpoints: {} }).cluster!;
}

export function registerFederationCommands(program: Command): void {
  natsOptions(program.command('deploy').description('store a deployment in the cluster: every federated gateway serves it'))
    .requiredOption('-c, --config <file>', 'YAML config file whose endpoints are deployed')
    .action(async (opts: NatsFlags & { config: string }) => {
      const config = loadConfigFile(opts.config);
      const connection = await ClusterConnection.connect(connectOptionsFromConfig(clusterOf(opts, config.cluster), 'switchyard-deploy'));
      try {
        const stored = await (await DeploymentStore.open(connection)).publish(config);
        for (const e of stored) console.log(`deployed ${e.name} (version ${e.version})`);
      } finally {
        await connection.close();
      }
    });
  natsOptions(program.command('status').description("show a federation: its deployment, each endpoint's leader and replicas, the gateways and their load"))
    .option('--json', 'print JSON')
    .action(async (opts: NatsFlags & { json?: boolean }) => {
      const connection = await ClusterConnection.connect(connectOptionsFromConfig(clusterOf(opts), 'switchyard-status'));
      try {
        const status = await readFederationStatus(connection);
        console.log(opts.json ? JSON.stringify(status, null, 2) : formatFederationStatus(status));
      } finally {
        await connection.close();
      }
    });
}
