/** Federation rigs: `switchyard serve --nats` gateways and `switchyard deploy`/`status` as CLI child processes. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { spawnCli, waitFor, type ChildProcessHandle } from './cluster.js';

export interface GatewayProcess extends ChildProcessHandle {
  readonly url: string;
  readonly region: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A federated gateway (`switchyard serve --nats <url> --region <r>`), resolved once it listens. */
export async function startFederatedGateway(nats: string, region: string, extra: string[] = []): Promise<GatewayProcess> {
  const handle = spawnCli(['serve', '--nats', nats, '--region', region, '--host', '127.0.0.1', '--port', '0', ...extra]);
  let url = '';
  await waitFor(
    `gateway in ${region} to listen`,
    () => {
      if (handle.child.exitCode !== null) throw new Error(`gateway exited (${handle.child.exitCode}):\n${handle.output()}`);
      const m = /switchyard listening on (http:\/\/[^\s]+)/.exec(handle.output());
      if (m) url = m[1]!;
      return url !== '';
    },
    30_000,
  );
  return {
    ...handle,
    url,
    region,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (handle.child.exitCode === null && handle.child.signalCode === null) handle.child.kill(signal);
      if (signal === 'SIGKILL' || signal === 'SIGTERM') await handle.exited;
    },
  };
}

/** Runs a CLI command to its end; rejects with its output when it fails. */
export async function runCli(args: string[]): Promise<string> {
  const handle = spawnCli(args);
  const code = await handle.exited;
  if (code !== 0) throw new Error(`switchyard ${args.join(' ')} exited ${code}:\n${handle.output()}`);
  return handle.output();
}

/** Writes `endpoints` as an app.yaml in `dir` and deploys it with `switchyard deploy`. */
export async function deploy(nats: string, dir: string, endpoints: Record<string, Record<string, unknown>>, name = 'app.yaml', extra: string[] = []): Promise<string> {
  const file = path.join(dir, name);
  writeFileSync(file, stringify({ endpoints }));
  return runCli(['deploy', '--config', file, '--nats', nats, ...extra]);
}

export interface StatusJson {
  deployed_at: string | null;
  gateways: Array<{ id: string; region: string; url: string; load: Record<string, number>; leading: string[] }>;
  endpoints: Record<string, { version: string; leader: { gateway: string; region: string; token: number } | null; desired: number | null; replicas: Array<{ key: string; replicaId: string; node: string; state: string; version: string }> }>;
}

export async function status(nats: string, extra: string[] = []): Promise<StatusJson> {
  const out = await runCli(['status', '--nats', nats, '--json', ...extra]);
  return JSON.parse(out) as StatusJson;
}
