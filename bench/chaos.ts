/**
 * `npm run bench:chaos`: replays hostile cases (bench/chaos/*.ts) against a gateway running as a
 * separate process, one fresh gateway per case, and reports per case: what should happen, what
 * was observed, the gateway's RSS before / at its peak / after (settled: back within 1.5× of
 * before, or 30 s), and other clients' p99 during the attack against a quiet run measured just
 * before it on the same gateway. Writes bench/results/chaos.json and chaos.md.
 *
 * The other clients: 4 lanes of sequential small JSON requests on the same endpoint.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { CHAOS_CASES } from './chaos/index.js';
import type { ChaosCase } from './chaos/case.js';
import { startServer } from './lib/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../gateway/cli/main.js', import.meta.url));
/** A predictor whose behaviour the request picks (echo, bytes of any size, streams of any chunk size). */
const PREDICTOR = fileURLToPath(new URL('../test/fixtures/behaviours.js', import.meta.url));
const QUIET_MS = Number(process.env.CHAOS_QUIET_MS ?? 3000);
const SETTLE_MS = Number(process.env.CHAOS_SETTLE_MS ?? 30_000);
const ENDPOINT = 'shared';
/** glibc raises its mmap threshold to the largest buffer freed (up to 32 MB), and buffers under it stay in malloc's heaps once freed; a fixed threshold hands each large buffer back when freed. */
const GLIBC_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072' };

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

const mb = (bytes: number) => Math.round(bytes / (1024 * 1024));

function p99(samples: number[]): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
}

/** Other clients: sequential requests on 4 lanes until `until` resolves; latencies and failures. */
async function otherClients(url: string, stop: Promise<unknown>): Promise<{ latencies: number[]; failed: number }> {
  let running = true;
  void stop.then(() => (running = false));
  const latencies: number[] = [];
  let failed = 0;
  const lane = async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}/inference/${ENDPOINT}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-timeout-ms': '10000' }, body: '{"value":1}' });
        await res.arrayBuffer();
        if (res.status === 200) latencies.push(performance.now() - t0);
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  return { latencies, failed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the shared endpoint has a ready replica (/readyz may stay 503 for a case's broken endpoint). */
async function sharedReady(url: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const body = (await (await fetch(`${url}/readyz`)).json()) as { endpoints: Record<string, { ready: number }> };
    if ((body.endpoints[ENDPOINT]?.ready ?? 0) > 0) return;
    await sleep(100);
  }
  throw new Error(`endpoint ${ENDPOINT} had no ready replica within 30 s`);
}

interface CaseResult {
  case: string;
  expected: string;
  observed: string;
  rss_mb: { before: number; peak: number; after: number; settled_s: number };
  others: { quiet_p99_ms: number; during_p99_ms: number; ratio: number; failed: number; served: number };
}

async function runCase(c: ChaosCase, dir: string): Promise<CaseResult> {
  const config = path.join(dir, `${c.name.replace(/\W+/g, '-')}.yaml`);
  const top = (await c.prepare?.()) ?? {};
  try {
    return await runGateway(c, dir, config, top);
  } finally {
    await c.dispose?.();
  }
}

async function runGateway(c: ChaosCase, dir: string, config: string, top: Record<string, unknown>): Promise<CaseResult> {
  writeFileSync(
    config,
    stringify({
      ...top,
      server: { host: '127.0.0.1', log_level: 'warn', ...c.server },
      endpoints: Object.fromEntries(
        Object.entries({ [ENDPOINT]: c.endpoint ?? {}, ...c.endpoints }).map(([name, fields]) => [name, { predictor: PREDICTOR, output_dir: path.join(dir, 'out'), ...fields }]),
      ),
    }),
  );
  const server = await startServer({
    command: process.execPath,
    args: (port) => [CLI, 'serve', '--config', config, '--port', String(port)],
    cwd: ROOT,
    readyPath: c.readyPath ?? '/readyz',
    // As the README's "Reliability" section advises for production on glibc: large buffers are
    // returned to the OS when freed instead of kept in malloc's heaps.
    env: GLIBC_MALLOC_ENV,
  });
  try {
    await sharedReady(server.url);
    // Warm up, then the quiet run.
    await otherClients(server.url, sleep(500));
    const quiet = await otherClients(server.url, sleep(QUIET_MS));
    await sleep(500);
    const before = rssBytes(server.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.pid))), 50);
    const controller = new AbortController();
    const attack = c.run({ url: server.url, port: server.port, endpoint: ENDPOINT, signal: controller.signal });
    const timer = setTimeout(() => controller.abort(), c.durationMs);
    const during = otherClients(server.url, attack.catch(() => undefined));
    let observed: string;
    try {
      observed = await attack;
    } catch (err) {
      observed = `attack failed: ${(err as Error).message}`;
    }
    clearTimeout(timer);
    const others = await during;
    const t0 = performance.now();
    let after = rssBytes(server.pid);
    while (after > 1.5 * before && performance.now() - t0 < SETTLE_MS) {
      await sleep(250);
      after = rssBytes(server.pid);
    }
    clearInterval(sampler);
    const quietP99 = p99(quiet.latencies);
    const duringP99 = p99(others.latencies);
    return {
      case: c.name,
      expected: c.expected,
      observed,
      rss_mb: { before: mb(before), peak: mb(peak), after: mb(after), settled_s: Math.round((performance.now() - t0) / 100) / 10 },
      others: {
        quiet_p99_ms: Math.round(quietP99 * 10) / 10,
        during_p99_ms: Math.round(duringP99 * 10) / 10,
        ratio: Math.round((duringP99 / quietP99) * 100) / 100,
        failed: others.failed,
        served: others.latencies.length,
      },
    };
  } finally {
    await server.stop();
  }
}

function table(results: CaseResult[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.case} | ${r.expected} | ${r.observed} | ${r.rss_mb.before} / ${r.rss_mb.peak} / ${r.rss_mb.after} (${r.rss_mb.settled_s} s) | ${r.others.quiet_p99_ms} → ${r.others.during_p99_ms} ms (${r.others.ratio}×), ${r.others.failed} failed of ${r.others.served + r.others.failed} |`,
  );
  return ['| case | expected | observed | RSS MB before / peak / after (settle) | others p99 quiet → during |', '|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const only = process.argv[2];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-chaos-'));
  const results: CaseResult[] = [];
  for (const c of CHAOS_CASES) {
    if (only && !c.name.includes(only)) continue;
    process.stderr.write(`chaos: ${c.name} ...\n`);
    const result = await runCase(c, dir);
    results.push(result);
    process.stderr.write(`  ${result.observed}; RSS ${result.rss_mb.before}/${result.rss_mb.peak}/${result.rss_mb.after} MB; others p99 ${result.others.quiet_p99_ms} → ${result.others.during_p99_ms} ms\n`);
  }
  const md = table(results);
  console.log(md);
  if (!only) {
    const meta = { date: new Date().toISOString(), node: process.version, cpus: os.availableParallelism(), command: 'npm run bench:chaos' };
    writeFileSync(path.join(ROOT, 'bench/results/chaos.json'), JSON.stringify({ ...meta, results }, null, 2) + '\n');
    writeFileSync(
      path.join(ROOT, 'bench/results/chaos.md'),
      `# Reliability cases (\`npm run bench:chaos\`)\n\n${meta.date}, Node ${meta.node}, ${meta.cpus} CPUs (shared machine).\n\n${md}\n`,
    );
  }
}

await main();
