/**
 * `node dist/bench/federation.js [--duration 6] [--connections 32]`: federated gateways under
 * load. One nats-server (JetStream), two node agents and two federated gateways run as child
 * processes; the demo echo predictor is deployed with autoscaling (target 8 in flight per
 * replica). Three phases, in one run:
 *   1. all connections through gateway A (after a warm-up as long as a phase);
 *   2. the same connections split over A and B: replicas and throughput compare with phase 1;
 *   3. split again, gateway B SIGKILLed halfway: the failed-request count of A's clients (the
 *      target is zero) and of B's own (who lose their gateway).
 * The replica count of each phase is read from the shared record after the phase. B's own clients
 * count a failure for every connection attempt to the dead gateway (autocannon retries at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { measureHttp, round, type HttpLoadResult } from './lib/http-load.js';
import { findFreePort, startServer, type RunningServer } from './lib/processes.js';

const CLI = fileURLToPath(new URL('../gateway/cli/main.js', import.meta.url));
const ECHO = fileURLToPath(new URL('../examples/echo/predictor.js', import.meta.url));
const children: ChildProcess[] = [];

function run(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return child;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Described {
  federation?: { endpoints: Record<string, { desired: number | null; replicas: Array<{ state: string }> }> };
}

async function readyReplicas(gateway: RunningServer): Promise<number> {
  const d = (await (await fetch(`${gateway.url}/v1/endpoints`)).json()) as Described;
  return d.federation?.endpoints.echo?.replicas.filter((r) => r.state === 'ready').length ?? 0;
}

const load = (gateway: RunningServer, connections: number, durationS: number, signal?: AbortSignal, warmupS = 0): Promise<HttpLoadResult> =>
  measureHttp({
    warmupS,
    url: `${gateway.url}/inference/echo`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"text":"hello"}',
    connections,
    durationS,
    ...(signal ? { signal } : {}),
  });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '6' }, connections: { type: 'string', default: '32' } } });
  const durationS = Number(values.duration);
  const connections = Number(values.connections);
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-federation-'));
  try {
    const natsPort = await findFreePort();
    run('nats-server', ['-js', '-sd', join(dir, 'js'), '-a', '127.0.0.1', '-p', String(natsPort)]);
    const nats = `nats://127.0.0.1:${natsPort}`;
    await new Promise((r) => setTimeout(r, 1000));
    for (const name of ['eu-1', 'eu-2']) run(process.execPath, [CLI, 'node', '--nats', nats, '--region', 'eu', '--name', name, '--devices', 'cpu', '--max-replicas', '8', '--work-dir', join(dir, name)]);
    const app = join(dir, 'app.yaml');
    writeFileSync(
      app,
      `endpoints:\n  echo:\n    predictor: ${JSON.stringify(ECHO)}\n    max_concurrency: 64\n    autoscaling: { min_replicas: 1, max_replicas: 8, target_concurrency_per_replica: 8, window_size_secs: 2, scaledown_delay_secs: 600 }\n`,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await new Promise<void>((resolve, reject) => {
      const deploy = spawn(process.execPath, [CLI, 'deploy', '--config', app, '--nats', nats], { stdio: 'inherit' });
      deploy.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`deploy exited ${code}`))));
    });
    const gateway = (region: string) => startServer({ command: process.execPath, args: (port) => [CLI, 'serve', '--nats', nats, '--region', region, '--host', '127.0.0.1', '--port', String(port)], startTimeoutMs: 60_000 });
    const a = await gateway('eu');
    const b = await gateway('eu');
    await waitUntil('a ready replica on both gateways', async () => (await readyReplicas(a)) > 0 && (await readyReplicas(b)) > 0);

    // The warm-up lets the autoscaler reach its count for this load before the measured phases.
    const one = await load(a, connections, durationS, undefined, durationS);
    const replicasOne = await readyReplicas(a);
    const [splitA, splitB] = await Promise.all([load(a, connections / 2, durationS), load(b, connections / 2, durationS)]);
    const replicasTwo = await readyReplicas(a);
    const killAt = setTimeout(() => process.kill(b.pid, 'SIGKILL'), (durationS * 1000) / 2);
    const aborted = new AbortController();
    const [survivor, killed] = await Promise.all([load(a, connections / 2, durationS), load(b, connections / 2, durationS, aborted.signal)]);
    clearTimeout(killAt);

    const rows = [
      ['one gateway', one.rps, one.latency.p50, one.errors.total, replicasOne],
      ['two gateways (sum)', splitA.rps + splitB.rps, Math.max(splitA.latency.p50, splitB.latency.p50), splitA.errors.total + splitB.errors.total, replicasTwo],
      ['gateway B killed: clients of A', survivor.rps, survivor.latency.p50, survivor.errors.total, await readyReplicas(a)],
      ["gateway B killed: B's own clients", killed.rps, killed.latency.p50, killed.errors.total, '-'],
    ];
    console.log(`\nfederation, ${connections} connections, ${durationS} s per phase (echo, autoscaled at 8 in flight per replica)\n`);
    console.log('| phase | req/s | p50 ms | failed | ready replicas after |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [phase, rps, p50, failed, replicas] of rows) console.log(`| ${phase} | ${round(Number(rps), 0)} | ${round(Number(p50), 2)} | ${failed} | ${replicas} |`);
    await a.stop();
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  console.error(err.message);
  process.exit(1);
});
