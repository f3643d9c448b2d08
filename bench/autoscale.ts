/**
 * `npm run bench:autoscale`: what autoscaling buys during a load step. Two gateways, each a child
 * process started in turn on 127.0.0.1, serve the same endpoint: a predictor that sleeps 20 ms
 * per request (wall time, no CPU, so replicas scale on concurrency rather than on cores), at most
 * 2 requests at once per replica. One autoscales from 1 to 8 replicas; the other is fixed at 1,
 * the baseline. Each gets a light warm-up, a pause, then a step from idle to --connections
 * connections for --duration seconds, while this process polls `GET /v1/endpoints` every 50 ms.
 *
 * Reported per gateway: throughput, latency p50/p99 and errors over the whole step (the early
 * seconds before new replicas serve are part of the step, as a client sees them); and for the
 * autoscaled one the time from the step's start to the first scale-up decision and to the first
 * added replica being created, ready, and having served a request, the replica count over time,
 * and how long after the load it returns to min_replicas. Results go to
 * bench/results/autoscale.{json,md}; the table is also printed.
 */
import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { measureHttp, type HttpLoadResult } from './lib/http-load.js';
import { startServer, type RunningServer } from './lib/processes.js';
import { repositoryRoot } from './lib/servers.js';
import { describeMachine, type Machine } from './lib/report.js';
import {
  backToCountMs,
  readyBySecond,
  readyCount,
  replicaCountChanges,
  round,
  servedByReplica,
  startEndpointProbe,
  stepMilestones,
  type DecisionView,
  type EndpointProbe,
  type ProbeSample,
  type ReplicaCountChange,
  type StepMilestones,
} from './lib/autoscale-probe.js';

const USAGE = `Usage: node dist/bench/autoscale.js [options]

  --duration <s>      seconds of the load step (default 10)
  --connections <n>   connections during the step, one request in flight on each (default 32)
  --tail <s>          seconds to keep watching the autoscaled gateway after the step, to see it
                      back at min_replicas (default 13: a window, then two scale-down delays,
                      since each move down restarts the delay; 0 skips)
  --out <dir>         where autoscale.{json,md} go (default bench/results)`;

const ENDPOINT = 'sleep';
const SLEEP_MS = 20;
const BODY = JSON.stringify({ action: 'sleep', ms: SLEEP_MS });
const MAX_CONCURRENCY = 2;
const MAX_QUEUE = 4096;
const POLL_MS = 50;
const WARMUP = { connections: 1, durationS: 2 };
/** Idle time between warm-up and step: longer than the decision window, so the step starts from a quiet signal. */
const SETTLE_MS = 1500;
const KNOBS = {
  min_replicas: 1,
  max_replicas: 8,
  target_concurrency_per_replica: 2,
  window_size_secs: 1,
  scaledown_delay_secs: 5,
  tick_ms: 100,
} as const;

const DIST = fileURLToPath(new URL('../', import.meta.url));
const PREDICTOR = DIST + 'test/fixtures/behaviours.js';
const GATEWAY_MAIN = DIST + 'gateway/cli/main.js';

interface Variant {
  name: string;
  description: string;
  endpoint: Record<string, unknown>;
  /** Keep watching after the step (scale-down is only worth watching where there is autoscaling). */
  watchTail: boolean;
}

const VARIANTS: Variant[] = [
  {
    name: 'autoscaled',
    description: `autoscaling ${KNOBS.min_replicas}..${KNOBS.max_replicas} replicas, target ${KNOBS.target_concurrency_per_replica} per replica, window ${KNOBS.window_size_secs} s, tick ${KNOBS.tick_ms} ms`,
    endpoint: { replicas: KNOBS.min_replicas, autoscaling: KNOBS },
    watchTail: true,
  },
  {
    name: 'fixed-1',
    description: 'fixed at 1 replica, no autoscaling (baseline)',
    endpoint: { replicas: 1 },
    watchTail: false,
  },
];

interface Options {
  durationS: number;
  connections: number;
  tailS: number;
  out: string;
}

interface VariantResult {
  name: string;
  description: string;
  endpointConfig: Record<string, unknown>;
  status: 'measured' | 'failed';
  reason?: string;
  stepStartedAt?: string;
  step?: HttpLoadResult;
  /** Successful responses in each whole second of the step. */
  throughputBySecond?: number[];
  readyBySecond?: number[];
  milestones?: StepMilestones;
  replicaCountChanges?: ReplicaCountChange[];
  /** Milliseconds from the end of the load until back to min_replicas (autoscaled, when watched). */
  backToMinMs?: number | null;
  decisionsApplied?: (DecisionView & { t: number })[];
  servedByReplica?: Record<string, number>;
  serverCpuPercent?: number;
  polls?: { count: number; failed: number; rttP50Ms: number; rttMaxMs: number };
}

interface AutoscaleRun {
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: Options & { sleepMs: number; maxConcurrency: number; maxQueue: number; pollMs: number; warmup: typeof WARMUP; settleMs: number; knobs: typeof KNOBS };
  variants: VariantResult[];
  /** Autoscaled over fixed-1: throughput ratio, and fixed-1's p99 over the autoscaled p99. */
  ratios?: { rps: number; p99Improvement: number };
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      connections: { type: 'string' },
      tail: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const durationS = number('--duration', values.duration, 10);
  const connections = number('--connections', values.connections, 32);
  const tailS = number('--tail', values.tail, KNOBS.window_size_secs + 2 * KNOBS.scaledown_delay_secs + 2, true);
  if (!Number.isInteger(connections)) throw new Error(`--connections must be a positive integer (got "${values.connections}")`);
  return { durationS, connections, tailS, out: values.out ?? `${repositoryRoot}bench/results` };
}

function number(flag: string, text: string | undefined, fallback: number, zeroAllowed = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) throw new Error(`${flag} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number (got "${text}")`);
  return value;
}

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Servers running right now, so an interrupted run does not leave them behind. */
const running = new Set<RunningServer>();

async function startGateway(variant: Variant, configDir: string): Promise<RunningServer> {
  const config = {
    server: { log_level: 'warn' },
    endpoints: { [ENDPOINT]: { predictor: PREDICTOR, max_concurrency: MAX_CONCURRENCY, max_queue: MAX_QUEUE, ...variant.endpoint } },
  };
  // JSON is YAML, so the gateway's YAML loader reads it as it is.
  const file = join(configDir, `${variant.name}.yaml`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const server = await startServer({
    command: process.execPath,
    args: (port) => [GATEWAY_MAIN, 'serve', '--config', file, '--port', String(port), '--host', '127.0.0.1'],
    cwd: repositoryRoot,
    readyPath: '/readyz',
    startTimeoutMs: 60_000,
  });
  running.add(server);
  return server;
}

/** Waits until the endpoint is back to `count` ready replicas with nothing in flight. */
async function awaitQuiet(sample: () => Promise<ProbeSample>, count: number, timeoutMs = 20_000): Promise<ProbeSample> {
  const deadline = Date.now() + timeoutMs;
  let last: ProbeSample | undefined;
  while (Date.now() < deadline) {
    last = await sample();
    if (last.replicas.length === count && readyCount(last) === count && last.inFlight === 0 && last.queued === 0) return last;
    await sleep(POLL_MS);
  }
  throw new Error(`endpoint not back to ${count} idle replica(s) within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

async function measureVariant(variant: Variant, options: Options, configDir: string): Promise<VariantResult> {
  const result: VariantResult = { name: variant.name, description: variant.description, endpointConfig: variant.endpoint, status: 'measured' };
  let server: RunningServer | undefined;
  let probe: EndpointProbe | undefined;
  try {
    server = await startGateway(variant, configDir);
    const url = `${server.url}/inference/${ENDPOINT}`;
    const warmup = await measureHttp({ url, method: 'POST', body: BODY, ...WARMUP, verifyBody: (body) => body.includes(`"slept":${SLEEP_MS}`) });
    if (warmup.errors.total > 0 || warmup.requests === 0) throw new Error(`warm-up failed: ${warmup.requests} answers, errors ${JSON.stringify(warmup.errors)}`);
    await sleep(SETTLE_MS);

    probe = startEndpointProbe(server.url, ENDPOINT, POLL_MS);
    const before = await awaitQuiet(probe.sample, 1);
    const throughputBySecond: number[] = [];
    const cpuBefore = server.cpuSeconds();
    const stepStartAt = Date.now();
    const step = await measureHttp({
      url,
      method: 'POST',
      body: BODY,
      connections: options.connections,
      durationS: options.durationS,
      onProgress: (p) => throughputBySecond.push(p.lastSecond),
    });
    const stepEndAt = Date.now();
    const cpuAfter = server.cpuSeconds();
    if (variant.watchTail && options.tailS > 0) await sleep(options.tailS * 1000);
    const record = await probe.stop();
    probe = undefined;

    const rtts = record.samples.filter((s) => s.at >= stepStartAt && s.at <= stepEndAt).map((s) => s.rttMs).sort((a, b) => a - b);
    Object.assign(result, {
      stepStartedAt: new Date(stepStartAt).toISOString(),
      step,
      throughputBySecond,
      readyBySecond: readyBySecond(record, before, stepStartAt, Math.floor(options.durationS)),
      milestones: stepMilestones(record, before, stepStartAt, stepEndAt),
      replicaCountChanges: replicaCountChanges(record, stepStartAt),
      ...(variant.watchTail && options.tailS > 0 ? { backToMinMs: backToCountMs(record, stepEndAt, KNOBS.min_replicas) } : {}),
      decisionsApplied: record.decisions.filter((d) => d.applied && d.at >= stepStartAt).map((d) => ({ t: d.at - stepStartAt, ...d })),
      servedByReplica: servedByReplica(record),
      ...(cpuBefore !== undefined && cpuAfter !== undefined ? { serverCpuPercent: Math.round(((cpuAfter - cpuBefore) / step.durationS) * 100) } : {}),
      polls: { count: record.samples.length, failed: record.failedPolls, rttP50Ms: rtts[rtts.length >> 1] ?? 0, rttMaxMs: rtts[rtts.length - 1] ?? 0 },
    } satisfies Partial<VariantResult>);
    log(
      `${variant.name}: ${Math.round(step.rps)} req/s, p50 ${step.latency.p50} ms, p99 ${step.latency.p99} ms, errors ${step.errors.total}; ` +
        `first added replica ready at ${result.milestones!.firstAddedReplicaReadyMs ?? '—'} ms, served at ${result.milestones!.firstAddedReplicaServedMs ?? '—'} ms`,
    );
  } catch (err) {
    log(`${variant.name} failed: ${(err as Error).message}`);
    Object.assign(result, { status: 'failed', reason: (err as Error).message });
  } finally {
    await probe?.stop();
    if (server) {
      await server.stop();
      running.delete(server);
    }
  }
  return result;
}

/* ---------------------------------------------------------------- report */

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));
const at = (value: number | null | undefined): string => (value === null || value === undefined ? '—' : `${integer.format(value)} ms`);

function errorText(step: HttpLoadResult): string {
  const detail = Object.entries(step.errors.byStatus).map(([status, count]) => `${status}: ${count}`);
  if (step.errors.connection > 0) detail.push(`connection: ${step.errors.connection}`);
  if (step.errors.timeouts > 0) detail.push(`timeouts: ${step.errors.timeouts}`);
  return detail.length > 0 ? `${step.errors.total} (${detail.join(', ')})` : String(step.errors.total);
}

/** Replica counts from the step's start on, as `+t ms: ready (+N starting) (N draining)`; the count before the step shows at +0. */
function seriesText(changes: ReplicaCountChange[]): string {
  const before = changes.filter((c) => c.t < 0).pop();
  return [...(before ? [{ ...before, t: 0 }] : []), ...changes.filter((c) => c.t >= 0)]
    .map((c) => `+${c.t} ms: ${c.ready}${c.starting ? ` (+${c.starting} starting)` : ''}${c.draining ? ` (${c.draining} draining)` : ''}`)
    .join(', ');
}

function renderMarkdown(run: AutoscaleRun): string {
  const { machine, settings } = run;
  const capacity = (replicas: number): number => Math.round((replicas * MAX_CONCURRENCY * 1000) / SLEEP_MS);
  const lines = [
    '# Switchyard autoscaling: a load step',
    '',
    `${run.startedAt} · ${machine.cpu} · ${machine.cores} cores · ${machine.memoryGiB} GiB · Node ${machine.node} · ${machine.os}`,
    '',
    `Command: \`${run.command}\``,
    '',
    `Endpoint: a predictor that sleeps ${SLEEP_MS} ms per request (no CPU), max_concurrency ${MAX_CONCURRENCY} per replica, max_queue ${MAX_QUEUE}; ` +
      `ceiling ${capacity(1)} req/s per replica, ${capacity(KNOBS.max_replicas)} req/s at ${KNOBS.max_replicas}. ` +
      `Each gateway: ${WARMUP.durationS} s warm-up at ${WARMUP.connections} connection, ${SETTLE_MS / 1000} s idle, then a step to ${settings.connections} connections ` +
      `for ${settings.durationS} s; latency and throughput over the whole step. Gateways run one after the other as child processes; load and ` +
      `\`GET /v1/endpoints\` polls (every ${POLL_MS} ms) come from the bench process on the same machine.`,
    '',
    '| gateway | req/s | p50 ms | p99 ms | max ms | errors | scale-up decided | 1st added replica created | ready | served its 1st request | peak ready replicas | server CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const v of run.variants) {
    if (v.status !== 'measured' || !v.step || !v.milestones) {
      lines.push(`| ${v.name} | failed: ${(v.reason ?? 'no measurement').split('\n')[0]!.replace(/\|/g, '\\|')} | | | | | | | | | | |`);
      continue;
    }
    const m = v.milestones;
    const decided = m.firstScaleUpDecisionMs === null ? '—' : `${at(m.firstScaleUpDecisionMs)} (${m.firstScaleUpReason} → ${m.firstScaleUpTo})`;
    const peak = m.peakReadyMs === null || m.peakReady <= 1 ? String(m.peakReady) : `${m.peakReady} at ${at(m.peakReadyMs)}`;
    const cpu = v.serverCpuPercent === undefined ? '—' : `${v.serverCpuPercent}%`;
    lines.push(
      `| ${v.name} | ${integer.format(v.step.rps)} | ${ms(v.step.latency.p50)} | ${ms(v.step.latency.p99)} | ${ms(v.step.latency.max)} | ${errorText(v.step)} | ` +
        `${decided} | ${at(m.firstAddedReplicaCreatedMs)} | ${at(m.firstAddedReplicaReadyMs)} | ${at(m.firstAddedReplicaServedMs)} | ${peak} | ${cpu} |`,
    );
  }
  if (run.ratios) lines.push('', `Autoscaled against fixed-1: ${run.ratios.rps.toFixed(2)}× the throughput, p99 ${run.ratios.p99Improvement.toFixed(2)}× lower.`);
  lines.push('', 'Per second of the step:', '');
  for (const v of run.variants) {
    if (!v.throughputBySecond || !v.readyBySecond) continue;
    lines.push(`- ${v.name}: req/s ${v.throughputBySecond.join(' ')}; ready replicas ${v.readyBySecond.join(' ')}`);
  }
  const scaled = run.variants.find((v) => v.name === 'autoscaled' && v.status === 'measured');
  if (scaled?.replicaCountChanges && scaled.step) {
    lines.push(
      '',
      `Autoscaled ready replicas whenever a count changed, from the step's start: ${seriesText(scaled.replicaCountChanges)}.`,
    );
    if (scaled.backToMinMs !== undefined) {
      lines.push(
        '',
        scaled.backToMinMs === null
          ? `Not back to ${KNOBS.min_replicas} replica within ${settings.tailS} s after the load stopped (scaledown_delay_secs ${KNOBS.scaledown_delay_secs}).`
          : `Back to ${KNOBS.min_replicas} replica ${at(scaled.backToMinMs)} after the load stopped (scaledown_delay_secs ${KNOBS.scaledown_delay_secs}).`,
      );
    }
  }
  lines.push(
    '',
    `Times are from the step's start. "Scale-up decided" and "created" are the gateway's own stamps (decision record, replica started_at); ` +
      `a decision is stamped once the gateway has asked for its replicas, so it can read later than the first one's creation. ` +
      `"ready" and "served" are when a poll first showed them, so late by at most one poll interval plus its round trip ` +
      `(median round trip during the steps: ${run.variants.map((v) => `${v.name} ${v.polls ? `${v.polls.rttP50Ms} ms` : '—'}`).join(', ')}). ` +
      `Knobs: ${Object.entries(KNOBS).map(([k, value]) => `${k} ${value}`).join(', ')}; the rest at their defaults. Raw data: autoscale.json.`,
    '',
  );
  return lines.join('\n');
}

function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

async function main(argv: string[]): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const startedAt = new Date().toISOString();
  const configDir = mkdtempSync(join(tmpdir(), 'sy-bench-autoscale-'));
  const variants: VariantResult[] = [];
  try {
    for (const variant of VARIANTS) variants.push(await measureVariant(variant, options, configDir));
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
  const [scaled, fixed] = variants;
  const run: AutoscaleRun = {
    command: ['node', relative(process.cwd(), process.argv[1]!) || process.argv[1], ...argv].join(' '),
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: describeMachine(),
    settings: { ...options, sleepMs: SLEEP_MS, maxConcurrency: MAX_CONCURRENCY, maxQueue: MAX_QUEUE, pollMs: POLL_MS, warmup: WARMUP, settleMs: SETTLE_MS, knobs: KNOBS },
    variants,
    ...(scaled?.step && fixed?.step && fixed.step.rps > 0 && scaled.step.latency.p99 > 0
      ? { ratios: { rps: round(scaled.step.rps / fixed.step.rps, 2), p99Improvement: round(fixed.step.latency.p99 / scaled.step.latency.p99, 2) } }
      : {}),
  };
  mkdirSync(options.out, { recursive: true });
  const paths = { json: join(options.out, 'autoscale.json'), md: join(options.out, 'autoscale.md') };
  writeAtomically(paths.json, JSON.stringify(run, null, 2) + '\n');
  const markdown = renderMarkdown(run);
  writeAtomically(paths.md, markdown);
  process.stdout.write(markdown + '\n');
  log(`wrote ${paths.md}, ${paths.json}`);
  return variants.some((v) => v.status === 'failed') ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping servers`);
    void Promise.allSettled([...running].map((s) => s.stop())).finally(() => process.exit(130));
  });
}

process.exitCode = await main(process.argv.slice(2));
