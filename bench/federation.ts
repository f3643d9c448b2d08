/**
 * `node dist/bench/federation.js [--duration 6] [--connections 32] [--rounds 5] [--kills 5]`:
 * federated gateways under load. One nats-server (JetStream), node agents, federated gateways and
 * one single (non-federated) gateway run as child processes. In one run:
 *   0. latency: the demo echo with one replica on node `lat-1`, reached through a federated
 *      gateway and through today's single gateway (`serve --config --nats`, its own replica on
 *      the same node), 2 connections, `--rounds` alternating rounds of `--duration` / 2 s each:
 *      the median p50 of each and their ratio (target ≤ 1.1×);
 *   1. all connections through gateway A to echo autoscaled at 8 in flight per replica (after a
 *      warm-up as long as a phase);
 *   2. the same connections split over A and B: replicas and throughput compare with phase 1;
 *   3. split again, gateway B SIGKILLed halfway: the failed-request count of A's clients (the
 *      target is zero) and of B's own (who lose their gateway);
 *   4. leader failover, `--kills` times: the gateway leading echo is SIGKILLed (three gateways
 *      alive, no load) and the time until a survivor reports leading it is measured by polling
 *      the survivors' /v1/endpoints every 10 ms (target < 2 s); a fresh gateway replaces it.
 * The replica count of phases 1-3 is read from the shared record after each. B's own clients
 * count a failure for every connection attempt to the dead gateway (autocannon retries at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { measureHttp, round, type HttpLoadResult } from './lib/http-load.js';
import { findFreePort, startServer, type RunningServer } from './lib/processes.js';

const CLI = fileURLToPath(new URL('../gateway/cli/main.js', import.meta.url));
const ECHO = fileURLToPath(new URL('../examples/echo/predictor.js', import.meta.url));
const children: ChildProcess[] = [];
/** Gateways started with startServer: stopped however the run ends. */
const servers: RunningServer[] = [];

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
  federation?: {
    gateway: string;
    endpoints: Record<string, { desired: number | null; this_gateway_leads: boolean; leader: { gateway: string } | null; replicas: Array<{ state: string; node: string }> }>;
  };
  endpoints: Array<{ name: string; replicas: Array<{ state: string; node: string }> }>;
}

const describe = async (gateway: RunningServer): Promise<Described> => (await (await fetch(`${gateway.url}/v1/endpoints`)).json()) as Described;

async function readyReplicas(gateway: RunningServer, endpoint = 'echo'): Promise<number> {
  const d = await describe(gateway);
  return d.federation?.endpoints[endpoint]?.replicas.filter((r) => r.state === 'ready').length ?? 0;
}

/** The nodes a gateway routes `endpoint` to, from its own view of its replicas. */
async function routedNodes(gateway: RunningServer, endpoint: string): Promise<string[]> {
  const d = await describe(gateway);
  return (d.endpoints.find((e) => e.name === endpoint)?.replicas ?? []).filter((r) => r.state === 'ready').map((r) => r.node);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const load = (gateway: RunningServer, connections: number, durationS: number, signal?: AbortSignal, warmupS = 0, endpoint = 'echo'): Promise<HttpLoadResult> =>
  measureHttp({
    warmupS,
    url: `${gateway.url}/inference/${endpoint}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"text":"hello"}',
    connections,
    durationS,
    ...(signal ? { signal } : {}),
  });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { duration: { type: 'string', default: '6' }, connections: { type: 'string', default: '32' }, rounds: { type: 'string', default: '5' }, kills: { type: 'string', default: '5' } },
  });
  const durationS = Number(values.duration);
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const kills = Number(values.kills);
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-federation-'));
  try {
    const natsPort = await findFreePort();
    run('nats-server', ['-js', '-sd', join(dir, 'js'), '-a', '127.0.0.1', '-p', String(natsPort)]);
    const nats = `nats://127.0.0.1:${natsPort}`;
    await new Promise((r) => setTimeout(r, 1000));
    for (const name of ['eu-1', 'eu-2']) run(process.execPath, [CLI, 'node', '--nats', nats, '--region', 'eu', '--name', name, '--devices', 'cpu', '--max-replicas', '8', '--work-dir', join(dir, name)]);
    // The latency comparison's node: its own region, so both gateways' `lat` replicas land on it.
    run(process.execPath, [CLI, 'node', '--nats', nats, '--region', 'lat', '--name', 'lat-1', '--devices', 'cpu', '--max-replicas', '2', '--work-dir', join(dir, 'lat-1')]);
    const app = join(dir, 'app.yaml');
    const lat = `  lat:\n    predictor: ${JSON.stringify(ECHO)}\n    placement: remote\n    regions: [lat]\n    replicas: 1\n`;
    writeFileSync(
      app,
      `endpoints:\n  echo:\n    predictor: ${JSON.stringify(ECHO)}\n    max_concurrency: 64\n    regions: [eu]\n    autoscaling: { min_replicas: 1, max_replicas: 8, target_concurrency_per_replica: 8, window_size_secs: 2, scaledown_delay_secs: 600 }\n${lat}`,
    );
    const singleApp = join(dir, 'single.yaml');
    writeFileSync(singleApp, `endpoints:\n${lat}`);
    await new Promise((r) => setTimeout(r, 1000));
    await new Promise<void>((resolve, reject) => {
      const deploy = spawn(process.execPath, [CLI, 'deploy', '--config', app, '--nats', nats], { stdio: 'inherit' });
      deploy.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`deploy exited ${code}`))));
    });
    const started = async (server: Promise<RunningServer>): Promise<RunningServer> => {
      const s = await server;
      servers.push(s);
      return s;
    };
    const gateway = (region: string) => started(startServer({ command: process.execPath, args: (port) => [CLI, 'serve', '--nats', nats, '--region', region, '--host', '127.0.0.1', '--port', String(port)], startTimeoutMs: 60_000 }));
    const a = await gateway('eu');
    const b = await gateway('eu');
    await waitUntil('a ready replica on both gateways', async () => (await readyReplicas(a)) > 0 && (await readyReplicas(b)) > 0);

    // 0. One request's path: federated gateway vs today's single gateway, same node, same predictor.
    const single = await started(startServer({ command: process.execPath, args: (port) => [CLI, 'serve', '--config', singleApp, '--nats', nats, '--region', 'eu', '--host', '127.0.0.1', '--port', String(port)], startTimeoutMs: 60_000 }));
    await waitUntil('both gateways to route lat to lat-1', async () => (await routedNodes(a, 'lat')).join() === 'lat-1' && (await routedNodes(single, 'lat')).join() === 'lat-1');
    const roundS = Math.max(2, durationS / 2);
    const p50 = { federated: [] as number[], single: [] as number[] };
    const failedLat = { federated: 0, single: 0 };
    // Warm-up as long as a round on each path (JIT, connections, the replica's first requests).
    await load(a, 2, 1, undefined, roundS, 'lat');
    await load(single, 2, 1, undefined, roundS, 'lat');
    for (let i = 0; i < rounds; i++) {
      // Alternating order, so drift in the machine's load falls on both alike.
      for (const which of i % 2 ? (['single', 'federated'] as const) : (['federated', 'single'] as const)) {
        const r = await load(which === 'federated' ? a : single, 2, roundS, undefined, 0, 'lat');
        p50[which].push(r.latency.p50);
        failedLat[which] += r.errors.total;
      }
    }
    await single.stop();

    // The warm-up lets the autoscaler reach its count for this load before the measured phases.
    const one = await load(a, connections, durationS, undefined, durationS);
    const replicasOne = await readyReplicas(a);
    const [splitA, splitB] = await Promise.all([load(a, connections / 2, durationS), load(b, connections / 2, durationS)]);
    const replicasTwo = await readyReplicas(a);
    const killAt = setTimeout(() => process.kill(b.pid, 'SIGKILL'), (durationS * 1000) / 2);
    const aborted = new AbortController();
    const [survivor, killed] = await Promise.all([load(a, connections / 2, durationS), load(b, connections / 2, durationS, aborted.signal)]);
    clearTimeout(killAt);

    const replicasKilled = await readyReplicas(a);

    // 4. Leader failover: SIGKILL the gateway leading echo, time until a survivor leads it.
    const live: RunningServer[] = [a, await gateway('eu'), await gateway('eu')];
    const idOf = new Map<RunningServer, string>();
    for (const g of live) idOf.set(g, (await describe(g)).federation!.gateway);
    const failovers: number[] = [];
    for (let k = 0; k < kills; k++) {
      let leader: RunningServer | undefined;
      await waitUntil('a live gateway to lead echo', async () => {
        const id = (await describe(live[0]!)).federation?.endpoints.echo?.leader?.gateway;
        leader = live.find((g) => idOf.get(g) === id);
        return leader !== undefined;
      });
      const survivors = live.filter((g) => g !== leader);
      // A random moment in the leader's renewal cycle.
      await new Promise((r) => setTimeout(r, Math.random() * 1000));
      const t0 = performance.now();
      process.kill(leader!.pid, 'SIGKILL');
      let tookMs = NaN;
      for (;;) {
        const views = await Promise.all(survivors.map((g) => describe(g).catch(() => undefined)));
        if (views.some((v) => v?.federation?.endpoints.echo?.this_gateway_leads)) {
          tookMs = performance.now() - t0;
          break;
        }
        if (performance.now() - t0 > 30_000) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      failovers.push(tookMs);
      live.splice(live.indexOf(leader!), 1);
      const fresh = await gateway('eu');
      idOf.set(fresh, (await describe(fresh)).federation!.gateway);
      live.push(fresh);
    }

    const rows = [
      ['one gateway', one.rps, one.latency.p50, one.errors.total, replicasOne],
      ['two gateways (sum)', splitA.rps + splitB.rps, Math.max(splitA.latency.p50, splitB.latency.p50), splitA.errors.total + splitB.errors.total, replicasTwo],
      ['gateway B killed: clients of A', survivor.rps, survivor.latency.p50, survivor.errors.total, replicasKilled],
      ["gateway B killed: B's own clients", killed.rps, killed.latency.p50, killed.errors.total, '-'],
    ];
    console.log(`\nfederation, ${connections} connections, ${durationS} s per phase (echo, autoscaled at 8 in flight per replica)\n`);
    console.log('| phase | req/s | p50 ms | failed | ready replicas after |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [phase, rps, p50, failed, replicas] of rows) console.log(`| ${phase} | ${round(Number(rps), 0)} | ${round(Number(p50), 2)} | ${failed} | ${replicas} |`);
    const federatedP50 = median(p50.federated);
    const singleP50 = median(p50.single);
    console.log(`\nlatency, 2 connections, ${rounds} alternating rounds of ${roundS} s, one replica of echo on node lat-1 for each gateway:\n`);
    console.log('| path | p50 ms per round | median p50 ms | ratio | failed |');
    console.log('|---|---|---:|---:|---:|');
    console.log(`| single gateway (today) | ${p50.single.map((x) => round(x, 2)).join(', ')} | ${round(singleP50, 2)} | 1.00× | ${failedLat.single} |`);
    console.log(`| federated gateway | ${p50.federated.map((x) => round(x, 2)).join(', ')} | ${round(federatedP50, 2)} | ${round(federatedP50 / singleP50, 2)}× | ${failedLat.federated} |`);
    const ok = failovers.filter((x) => Number.isFinite(x));
    console.log(`\nleader failover after SIGKILL of the leading gateway (lease_ms default), ${kills} kills, polled every 10 ms:\n`);
    console.log(`each ms: ${failovers.map((x) => (Number.isFinite(x) ? Math.round(x) : 'none within 30 s')).join(', ')}`);
    if (ok.length) console.log(`median ${Math.round(median(ok))} ms, max ${Math.round(Math.max(...ok))} ms (target < 2000 ms)`);
  } finally {
    // Killed ones are gone already; the rest stop before NATS does.
    await Promise.all(servers.map((g) => g.stop().catch(() => undefined)));
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  console.error(err.message);
  process.exit(1);
});
