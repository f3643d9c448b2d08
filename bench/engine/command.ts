/**
 * `switchyard bench` behind the option parsing: builds the plans (closed loop, constant rate,
 * stages, sweep, SLO search, comparison), runs them on the engine, prints the text report (or
 * `--json`), writes `--report out.html`, and picks the exit code.
 *
 * Exit code: 0 when every run answered, without errors, on schedule (and met the SLO when one
 * was given; for `--search`, when some rate met it); 1 otherwise; 2 for bad options.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Engine } from './engine.js';
import { parseArrival, parseSlo, parseStages, parseSweep, UsageError, type Slo } from './options.js';
import type { LoadPlan, Pacing, StreamKind, Target } from './plan.js';
import type { Arrival, RateSegment } from './schedule.js';
import { perRequestLimits, nextSearchRate, searchResult } from './slo.js';
import { httpTarget, wsTarget } from './target.js';
import { compareRuns, SCHEMA, type BenchReport, type LabeledRun } from './report.js';
import { renderText } from './render-text.js';
import type { RunResult } from './result.js';

export { UsageError };

export interface BenchCommandOptions {
  url: string;
  /** A second target, measured alternately with the first. */
  compare?: string;
  /** Closed loop: connections (WebSocket: sockets), each with one request (WebSocket: --inflight) in flight. */
  connections?: number;
  /** Open loop: requests per second. */
  rate?: number;
  arrival?: string;
  maxConnections?: number;
  stages?: string;
  sweep?: string;
  slo?: string;
  search?: boolean;
  /** Seconds per run. */
  duration: number;
  warmup?: number;
  /** Seconds before an unanswered request is a timeout. */
  timeout?: number;
  workers?: number;
  /** Comparison rounds (each measures both targets). */
  rounds?: number;
  seed?: number;
  /** Path of a file holding the request body. */
  body?: string;
  method?: string;
  headers?: string[];
  stream?: boolean;
  sse?: boolean;
  ws?: boolean;
  inflight?: number;
  json?: boolean;
  /** Path of the HTML report to write. */
  report?: string;
}

/** Where the command writes; the process's streams unless a caller (a test) collects them. */
export interface BenchOutput {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

interface Prepared {
  targets: Target[];
  mode: BenchReport['kind'];
  pacings: Array<{ label: string; rate?: number; pacing: Pacing }>;
  slo?: Slo;
  timeoutMs: number;
}

export async function runBench(opts: BenchCommandOptions, io: BenchOutput): Promise<number> {
  const prepared = await prepare(opts);
  const engine = new Engine(opts.workers);
  const startedAt = new Date().toISOString();
  const runs: LabeledRun[] = [];
  const progress = progressLine(io.stderr);
  const run = async (label: string, target: Target, pacing: Pacing, extra: Partial<LabeledRun> = {}): Promise<RunResult> => {
    const plan: Omit<LoadPlan, 'startAt'> = {
      target,
      pacing,
      timeoutMs: prepared.timeoutMs,
      ...(prepared.slo ? { slo: perRequestLimits(prepared.slo), sloSpec: prepared.slo } : {}),
    };
    const result = await engine.run(plan, { onProgress: (p) => progress.update(label, p) });
    progress.end();
    runs.push({ label, ...extra, result });
    return result;
  };
  const warm = async (target: Target): Promise<void> => {
    if (!opts.warmup) return;
    const first = prepared.pacings[0]!.pacing;
    const pacing: Pacing =
      first.kind === 'closed'
        ? { ...first, durationS: opts.warmup }
        : { ...first, segments: [{ durationS: opts.warmup, fromRate: firstRate(first.segments), toRate: firstRate(first.segments) }] };
    await engine.run({ target, pacing, timeoutMs: prepared.timeoutMs });
  };

  let search: BenchReport['search'];
  try {
    for (const target of prepared.targets) await warm(target);
    if (prepared.mode === 'search') {
      const base = prepared.pacings[0]!.pacing;
      if (base.kind !== 'open') throw new UsageError('--search needs an open loop');
      const probes: Array<{ rate: number; met: boolean }> = [];
      const settings = { startRate: opts.rate ?? 100, maxRate: 1e7, precision: 0.05, maxProbes: 14 };
      for (let rate = nextSearchRate(probes, settings); rate !== undefined; rate = nextSearchRate(probes, settings)) {
        const pacing: Pacing = { ...base, segments: [{ durationS: opts.duration, fromRate: rate, toRate: rate }] };
        let result = await run(`probe ${probes.length + 1}: ${rate} req/s`, prepared.targets[0]!, pacing, { rate });
        // A miss while the generator itself fell behind says little about the server: once more.
        if (result.slo?.inconclusive) result = await run(`probe ${probes.length + 1} again: ${rate} req/s`, prepared.targets[0]!, pacing, { rate });
        probes.push({ rate, met: result.slo?.met === true });
      }
      const best = searchResult(probes);
      search = { bestRate: best ?? null, probes };
    } else if (prepared.mode === 'compare') {
      const rounds = opts.rounds ?? 3;
      const { pacing } = prepared.pacings[0]!;
      for (let round = 0; round < rounds; round++) {
        const order: Array<'a' | 'b'> = round % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
        for (const which of order) await run(`${which.toUpperCase()} round ${round + 1}`, prepared.targets[which === 'a' ? 0 : 1]!, pacing, { target: which });
      }
    } else {
      for (const { label, rate, pacing } of prepared.pacings) await run(label, prepared.targets[0]!, pacing, rate === undefined ? {} : { rate });
    }
  } finally {
    await engine.close();
  }

  const warnings: string[] = [];
  for (const r of runs) {
    for (const problem of r.result.schedule.problems) warnings.push(`${r.label}: ${problem}`);
    if (r.result.requests.ok === 0) warnings.push(`${r.label}: no request succeeded`);
  }
  const report: BenchReport = {
    schema: SCHEMA,
    kind: prepared.mode,
    startedAt,
    settings: settingsOf(opts),
    runs,
    ...(search ? { search } : {}),
    ...(prepared.mode === 'compare' ? { comparison: compareRuns(runs, prepared.targets[0]!.url, prepared.targets[1]!.url) } : {}),
    warnings: prepared.mode === 'search' ? [] : warnings,
  };
  io.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : renderText(report));
  if (opts.report) {
    // Loaded only when asked for: a run that writes no page spends no start-up on it.
    const { renderHtml } = await import('./report-html.js');
    await writeFile(opts.report, renderHtml(report));
  }
  return exitCode(report);
}

function exitCode(report: BenchReport): number {
  if (report.kind === 'search') return report.search?.bestRate === null ? 1 : 0;
  const bad = report.runs.some((r) => r.result.requests.ok === 0 || r.result.errors.total > 0 || !r.result.schedule.kept || r.result.slo?.met === false);
  return bad ? 1 : 0;
}

function settingsOf(opts: BenchCommandOptions): Record<string, unknown> {
  const { json: _json, report: _report, ...rest } = opts;
  return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
}

function firstRate(segments: RateSegment[]): number {
  const s = segments[0]!;
  return s.toRate > 0 ? s.toRate : Math.max(1, s.fromRate);
}

async function prepare(opts: BenchCommandOptions): Promise<Prepared> {
  if (!(opts.duration > 0)) throw new UsageError('--duration must be a positive number of seconds');
  if (opts.connections !== undefined && (!Number.isInteger(opts.connections) || opts.connections < 1)) throw new UsageError('--connections must be a positive integer');
  if (opts.rate !== undefined && !(opts.rate > 0)) throw new UsageError('--rate must be a positive number of requests per second');
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 0)) throw new UsageError('--workers must be a non-negative integer (0: the load runs on the main thread)');
  if (opts.rounds !== undefined && (!Number.isInteger(opts.rounds) || opts.rounds < 1)) throw new UsageError('--rounds must be a positive integer');
  const maxConnections = opts.maxConnections ?? 1000;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new UsageError('--max-connections must be a positive integer');
  const inflight = opts.inflight ?? 1;
  if (!Number.isInteger(inflight) || inflight < 1) throw new UsageError('--inflight must be a positive integer');
  if (opts.sse && opts.ws) throw new UsageError('--sse is for HTTP; over --ws a stream is --stream');
  if (opts.search && !opts.slo) throw new UsageError('--search needs --slo (the objective to search for)');
  const exclusive = [opts.stages && '--stages', opts.sweep && '--sweep', opts.search && '--search'].filter(Boolean);
  if (exclusive.length > 1) throw new UsageError(`${exclusive.join(' and ')} cannot be combined`);
  if (opts.compare && (opts.sweep || opts.search)) throw new UsageError('--compare measures one load shape; it cannot be combined with --sweep or --search');
  const openLoop = opts.rate !== undefined || opts.stages !== undefined || opts.sweep !== undefined || opts.search === true;
  if (openLoop && opts.connections !== undefined) throw new UsageError('--connections is the closed loop; with --rate/--stages/--sweep/--search use --max-connections');

  const arrival: Arrival = parseArrival(opts.arrival ?? 'constant');
  const slo = opts.slo ? parseSlo(opts.slo) : undefined;
  const seed = opts.seed ?? 1;
  const open = (segments: RateSegment[]): Pacing => ({ kind: 'open', segments, arrival, seed, maxConnections });
  const constant = (rate: number): RateSegment[] => [{ durationS: opts.duration, fromRate: rate, toRate: rate }];

  let mode: BenchReport['kind'] = 'run';
  let pacings: Prepared['pacings'];
  if (opts.search) {
    mode = 'search';
    pacings = [{ label: 'search', pacing: open(constant(opts.rate ?? 100)) }];
  } else if (opts.sweep) {
    mode = 'sweep';
    pacings = parseSweep(opts.sweep).map((rate) => ({ label: `${rate} req/s`, rate, pacing: open(constant(rate)) }));
  } else if (opts.stages) {
    mode = 'stages';
    pacings = [{ label: `stages ${opts.stages}`, pacing: open(parseStages(opts.stages, opts.rate ?? 0)) }];
  } else if (opts.rate !== undefined) {
    pacings = [{ label: `${opts.rate} req/s`, rate: opts.rate, pacing: open(constant(opts.rate)) }];
  } else {
    const connections = opts.connections ?? 100;
    pacings = [{ label: `${connections} connections`, pacing: { kind: 'closed', connections, durationS: opts.duration } }];
  }
  if (opts.compare) mode = 'compare';

  const headers = parseHeaders(opts.headers ?? []);
  const bodyText = opts.body === undefined ? undefined : await readBody(opts.body);
  const stream: StreamKind = opts.sse ? 'sse' : opts.stream ? 'chunked' : 'none';
  const build = (url: string): Target => {
    const checked = checkUrl(url, opts.ws === true, url === opts.url ? '--url' : '--compare');
    if (opts.ws) {
      const { input, stream: asked } = wsInput(bodyText, stream !== 'none');
      return wsTarget({ url: checked, headers, wsInput: input, stream: asked ? 'chunked' : 'none', inFlightPerSocket: inflight });
    }
    const body = bodyText === undefined ? undefined : stream !== 'none' ? askForStream(bodyText) : bodyText;
    return httpTarget({ url: checked, ...(opts.method ? { method: opts.method } : {}), headers, ...(body === undefined ? {} : { body }), stream });
  };
  const targets = [build(opts.url), ...(opts.compare ? [build(opts.compare)] : [])];
  return { targets, mode, pacings, ...(slo ? { slo } : {}), timeoutMs: (opts.timeout ?? 10) * 1000 };
}

function checkUrl(text: string, ws: boolean, option: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${option} is not a URL: ${text}`);
  }
  if (ws) {
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new UsageError(`${option} must be http(s):// or ws(s):// (got ${url.protocol})`);
  } else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${option} must be http:// or https:// (got ${url.protocol}; use --ws for WebSocket)`);
  }
  return url.href;
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const match = /^([^:=\s]+)\s*[:=]\s*(.*)$/.exec(line);
    if (!match) throw new UsageError(`--header must look like "Name: value" (got "${line}")`);
    headers[match[1]!] = match[2]!;
  }
  return headers;
}

async function readBody(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--body: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** With --stream or --sse, a JSON object body gets `"stream": true` unless it already says. */
function askForStream(body: string): string {
  try {
    const value: unknown = JSON.parse(body);
    if (value && typeof value === 'object' && !Array.isArray(value) && !('stream' in value)) return JSON.stringify({ ...value, stream: true });
  } catch {
    // Not JSON: sent as it is.
  }
  return body;
}

/** Over WebSocket the body file is the request input; a `"stream"` field in it moves to the message. */
function wsInput(body: string | undefined, stream: boolean): { input: unknown; stream: boolean } {
  if (body === undefined) return { input: {}, stream };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new UsageError('--body must be JSON with --ws');
  }
  if (value && typeof value === 'object' && !Array.isArray(value) && 'stream' in value) {
    const { stream: asked, ...input } = value as Record<string, unknown>;
    return { input, stream: stream || asked === true };
  }
  return { input: value, stream };
}

// Made on first use: the first Intl.NumberFormat loads ICU's locale data (~25 ms of CPU), which a
// --json run never needs.
let integerFormat: Intl.NumberFormat | undefined;
const integer = { format: (n: number): string => (integerFormat ??= new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })).format(n) };

/** A live line on a TTY; nothing at all otherwise (logs and pipes get the report only). */
function progressLine(stderr: BenchOutput['stderr']): { update: (label: string, p: import('./engine.js').Progress) => void; end: () => void } {
  let written = false;
  return {
    update(label, p) {
      if (!stderr.isTTY) return;
      stderr.write(`\r\x1b[K${label}  ${String(p.elapsedS).padStart(4)} s  ${integer.format(p.lastSecondOk).padStart(9)} ok/s  ${integer.format(p.sent).padStart(11)} sent  ${integer.format(p.errors)} errors`);
      written = true;
    },
    end() {
      if (written) stderr.write('\r\x1b[K');
      written = false;
    },
  };
}
