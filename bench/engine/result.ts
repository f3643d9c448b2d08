/**
 * One run's result, merged from every thread: the part of the `--json` schema (docs/bench.md) that
 * describes a single measurement. Field names are stable; times are milliseconds, rates per second.
 */
import type { LoadPlan } from './plan.js';
import { planDurationS } from './plan.js';
import { expectedArrivals } from './schedule.js';
import type { BucketReport, WorkerTotals } from './totals.js';
import { evaluateSlo, type SloResult } from './slo.js';
import { createLatencyHistogram, merged, spectrum, summarize, summarizeCounts, type CountSummary, type LatencySummary } from './histograms.js';

export interface TimelinePoint {
  second: number;
  scheduled: number;
  sent: number;
  ok: number;
  errors: number;
  /** Corrected latency of the answers completed in this second. */
  p50: number;
  p99: number;
  /** Uncorrected p99 of the same answers. */
  p99Uncorrected: number;
}

export interface StreamResult {
  /** From the intended send time (corrected) and from the actual send (uncorrected). */
  firstChunk: LatencySummary;
  firstChunkUncorrected: LatencySummary;
  chunkGap: LatencySummary;
  chunksPerStream: CountSummary;
  bytesPerStream: CountSummary;
  complete: number;
  /** Ended before the stream's end (connection cut, chunked body without its last chunk). */
  truncated: number;
  /** Carried an error frame (SSE `event: error`, WebSocket error after chunks, the gateway's error line). */
  errorFrame: number;
}

export interface RunResult {
  url: string;
  transport: 'http' | 'ws';
  mode: 'open' | 'closed';
  durationS: number;
  /** Open loop: the rate asked for (average over the run) and the arrival process. */
  offered?: { rate: number; arrival: string };
  connections: { limit: number; opened: number; peak: number };
  requests: {
    scheduled: number;
    sent: number;
    ok: number;
    failed: number;
    /** Sent more than 0 ms late because every allowed connection was busy. */
    waitedForConnection: number;
    /** Due but never sent before the run gave up (never silently dropped). */
    unsent: number;
    /** Sent again on a fresh connection after a kept-alive one was closed under it. */
    retried: number;
  };
  rates: {
    /** Requests per second the schedule asked for (closed loop: what was sent). */
    scheduled: number;
    /** Requests per second sent within the run's window. */
    sent: number;
    /** Successful answers per second. */
    throughput: number;
  };
  schedule: {
    /** False when the generator fell behind: see `problems`. */
    kept: boolean;
    problems: string[];
    /** How late the generator noticed each due request (its own timer and CPU lag). */
    lag: LatencySummary;
    /** Intended send time to the actual send (includes waiting for a free connection). */
    sendDelay: LatencySummary;
  };
  latency: {
    corrected: LatencySummary;
    uncorrected: LatencySummary;
    spectrum: { corrected: Array<[number, number]>; uncorrected: Array<[number, number]> };
  };
  errors: { total: number; byKind: Record<string, number> };
  bytes: number;
  /**
   * The generator's own CPU over the run (every thread of its process, start-up, summary and exit
   * excluded): what each request cost it, and how much of its load threads' time it used. Near 1,
   * the generator itself may have been the limit.
   */
  generator: GeneratorUse;
  stream?: StreamResult;
  /** With `--slo`: whether the run met it, and its goodput. */
  slo?: SloResult;
  timeline: TimelinePoint[];
}

export interface GeneratorUse {
  /** Threads that generated load (the main thread when the engine runs without workers). */
  threads: number;
  /** User + system CPU of the whole process from the plan's start to the last answer, in seconds. */
  cpuS: number;
  /** cpuS per request sent, in µs. */
  cpuUsPerRequest: number;
  /** cpuS over the run's wall time times `threads` (GC and compiler threads may push it above 1). */
  busy: number;
}

/** Above this share of its threads' time, the generator may have set the pace rather than the target. */
export const GENERATOR_BUSY = 0.9;

/** Scheduler lag above this at p99 means the generator itself could not keep up. */
const LAG_LIMIT_MS = 50;

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

/** The CPU the generator's process used over a run: `cpu` from process.cpuUsage(before), `wallMs` the run's wall time. */
export function generatorUse(threads: number, cpu: NodeJS.CpuUsage, wallMs: number, sent: number): GeneratorUse {
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    threads,
    cpuS: round(cpuS, 3),
    cpuUsPerRequest: sent > 0 ? round((cpuS * 1e6) / sent, 2) : 0,
    busy: wallMs > 0 ? round(cpuS / ((wallMs / 1000) * threads), 2) : 0,
  };
}

export function summarizeRun(plan: LoadPlan, buckets: BucketReport[], totals: WorkerTotals[], generator: GeneratorUse): RunResult {
  const durationS = planDurationS(plan.pacing);
  const sum = (f: (t: WorkerTotals) => number): number => totals.reduce((n, t) => n + f(t), 0);
  const byKind: Record<string, number> = {};
  for (const t of totals) for (const [kind, n] of Object.entries(t.errors)) byKind[kind] = (byKind[kind] ?? 0) + n;
  const failed = Object.values(byKind).reduce((a, b) => a + b, 0);

  const seconds = new Map<number, BucketReport[]>();
  for (const b of buckets) {
    const list = seconds.get(b.second);
    if (list) list.push(b);
    else seconds.set(b.second, [b]);
  }
  const corrected = createLatencyHistogram();
  const uncorrected = createLatencyHistogram();
  const timeline: TimelinePoint[] = [];
  for (const second of [...seconds.keys()].sort((a, b) => a - b)) {
    const list = seconds.get(second)!;
    const c = merged(list.map((b) => b.corrected));
    const u = merged(list.map((b) => b.uncorrected));
    corrected.add(c);
    uncorrected.add(u);
    const cs = summarize(c);
    timeline.push({
      second,
      scheduled: list.reduce((n, b) => n + b.scheduled, 0),
      sent: list.reduce((n, b) => n + b.sent, 0),
      ok: list.reduce((n, b) => n + b.ok, 0),
      errors: list.reduce((n, b) => n + b.errors, 0),
      p50: cs.p50,
      p99: cs.p99,
      p99Uncorrected: summarize(u).p99,
    });
  }

  const scheduled = sum((t) => t.scheduled);
  const sentInWindow = sum((t) => t.sentInWindow);
  const ok = sum((t) => t.ok);
  const unsent = sum((t) => t.unsent);
  const waited = sum((t) => t.waitedForConnection);
  const lag = summarize(merged(totals.map((t) => t.schedulerLag)));
  const sendDelay = summarize(merged(totals.map((t) => t.sendDelay)));
  const pacing = plan.pacing;
  const limit = pacing.kind === 'open' ? pacing.maxConnections : pacing.connections;

  const problems: string[] = [];
  let underSent = false;
  let generatorLimited = false;
  if (pacing.kind === 'open') {
    const expected = expectedArrivals(pacing.segments);
    if (unsent > 0) problems.push(`${unsent} due requests were never sent`);
    if (expected > 0 && sentInWindow < expected * 0.98) problems.push(`sent ${sentInWindow} of ${Math.round(expected)} scheduled requests within the run`);
    underSent = problems.length > 0;
    if (waited > scheduled * 0.01) problems.push(`${waited} requests waited for a free connection (--max-connections ${limit} reached)`);
    if (lag.p99 > LAG_LIMIT_MS) problems.push(`the generator's own scheduling lag reached p99 ${lag.p99} ms (more threads with --workers, or a lower rate)`);
    generatorLimited = problems.length > 0;
  }

  const target = plan.target;
  const streamed = target.transport === 'ws' ? target.stream : target.stream !== 'none';
  const result: RunResult = {
    url: target.url,
    transport: target.transport,
    mode: pacing.kind,
    durationS,
    ...(pacing.kind === 'open'
      ? { offered: { rate: round(expectedArrivals(pacing.segments) / durationS), arrival: pacing.arrival.kind === 'gamma' ? `gamma:${pacing.arrival.cv}` : pacing.arrival.kind } }
      : {}),
    connections: { limit, opened: sum((t) => t.connectionsOpened), peak: sum((t) => t.peakConnections) },
    requests: { scheduled, sent: sum((t) => t.sent), ok, failed, waitedForConnection: waited, unsent, retried: sum((t) => t.retried) },
    rates: { scheduled: round(scheduled / durationS), sent: round(sentInWindow / durationS), throughput: round(ok / durationS) },
    schedule: { kept: problems.length === 0, problems, lag, sendDelay },
    latency: {
      corrected: summarize(corrected),
      uncorrected: summarize(uncorrected),
      spectrum: { corrected: spectrum(corrected), uncorrected: spectrum(uncorrected) },
    },
    errors: { total: failed, byKind },
    bytes: sum((t) => t.bytes),
    generator,
    timeline,
  };
  if (plan.sloSpec) {
    const firstChunk = merged(totals.map((t) => t.firstChunk));
    result.slo = evaluateSlo(plan.sloSpec, {
      latency: corrected,
      firstChunk: streamed ? firstChunk : corrected,
      sent: result.requests.sent + unsent,
      failed,
      good: sum((t) => t.good),
      durationS,
      underSent,
      generatorLimited,
      scheduleProblems: problems,
    });
  }
  if (streamed) {
    result.stream = {
      firstChunk: summarize(merged(totals.map((t) => t.firstChunk))),
      firstChunkUncorrected: summarize(merged(totals.map((t) => t.firstChunkUncorrected))),
      chunkGap: summarize(merged(totals.map((t) => t.chunkGap))),
      chunksPerStream: summarizeCounts(merged(totals.map((t) => t.chunksPerStream), 'count')),
      bytesPerStream: summarizeCounts(merged(totals.map((t) => t.bytesPerStream), 'count')),
      complete: sum((t) => t.streams.complete),
      truncated: sum((t) => t.streams.truncated),
      errorFrame: sum((t) => t.streams.errorFrame),
    };
  }
  return result;
}
