/**
 * `switchyard bench`: load-test one endpoint from this machine and report what a client sees:
 * throughput, errors by status, latency percentiles, and for streams the time to first chunk and
 * the gaps between chunks. HTTP load comes from autocannon, WebSocket load from our own generator
 * (bench/lib), so the numbers mean the same thing here as in `npm run bench`.
 *
 * Exit code: 0 when every request succeeded, 1 when some failed or none completed, 2 for bad options.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
// Type-only: the load generators (and their dependencies) load only when `bench` runs, so a
// production install that serves never needs them.
import type { ErrorCounts, LoadProgress } from '../../bench/lib/http-load.js';
import type { LatencySummary } from '../../bench/lib/latency.js';

export interface BenchCommandOptions {
  url: string;
  connections: number;
  duration: number;
  /** Path of a file holding the request body. */
  body?: string | undefined;
  stream?: boolean | undefined;
  ws?: boolean | undefined;
  json?: boolean | undefined;
  method?: string | undefined;
  /** "Name: value" each. */
  headers?: string[];
  /** Seconds of load before measuring (dropped). */
  warmup?: number | undefined;
  /** Requests in flight per WebSocket. */
  inflight?: number | undefined;
}

/** Where the command writes; the process's streams unless a caller (a test) collects them. */
export interface BenchOutput {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

export interface BenchReport {
  url: string;
  transport: 'http' | 'ws';
  connections: number;
  inFlightPerSocket?: number;
  durationS: number;
  requests: number;
  rps: number;
  errors: ErrorCounts;
  latency: LatencySummary;
  stream?: { firstChunk: LatencySummary; chunkGap: LatencySummary; chunks: number; chunksPerS: number };
}

class UsageError extends Error {}

export async function runBenchCommand(opts: BenchCommandOptions, io: BenchOutput = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const report = await measure(opts, io, abort.signal);
    io.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : renderReport(report));
    return report.requests > 0 && report.errors.total === 0 ? 0 : 1;
  } catch (err) {
    io.stderr.write(`switchyard bench: ${(err as Error).message}\n`);
    return err instanceof UsageError ? 2 : 1;
  } finally {
    process.off('SIGINT', onSignal);
  }
}

async function measure(opts: BenchCommandOptions, io: BenchOutput, signal: AbortSignal): Promise<BenchReport> {
  const url = parseUrl(opts.url, opts.ws === true);
  if (!Number.isInteger(opts.connections) || opts.connections < 1) throw new UsageError('--connections must be a positive integer');
  if (!(opts.duration > 0)) throw new UsageError('--duration must be a positive number of seconds');
  const headers = parseHeaders(opts.headers ?? []);
  const bodyText = opts.body === undefined ? undefined : await readBody(opts.body);
  const progress = progressLine(io.stderr);

  if (opts.ws) {
    const { measureWs, switchyardExchange } = await import('../../bench/lib/ws-load.js');
    const { input, stream } = wsInput(bodyText, opts.stream === true);
    const inFlight = opts.inflight ?? 1;
    if (!Number.isInteger(inFlight) || inFlight < 1) throw new UsageError('--inflight must be a positive integer');
    const result = await measureWs({
      url,
      sockets: opts.connections,
      inFlightPerSocket: inFlight,
      durationS: opts.duration,
      warmupS: opts.warmup,
      exchange: switchyardExchange(input, stream),
      onProgress: progress.update,
      signal,
    });
    progress.end();
    return {
      url,
      transport: 'ws',
      connections: result.sockets,
      inFlightPerSocket: result.inFlightPerSocket,
      durationS: result.durationS,
      requests: result.requests,
      rps: result.rps,
      errors: result.errors,
      latency: result.latency,
      ...(stream ? { stream: { firstChunk: result.firstChunk, chunkGap: result.chunkGap, chunks: result.chunks, chunksPerS: result.chunksPerS } } : {}),
    };
  }

  const { measureHttp } = await import('../../bench/lib/http-load.js');
  const result = await measureHttp({
    url,
    method: opts.method?.toUpperCase(),
    headers,
    body: bodyText === undefined ? undefined : opts.stream ? askForStream(bodyText) : bodyText,
    connections: opts.connections,
    durationS: opts.duration,
    warmupS: opts.warmup,
    stream: opts.stream === true,
    onProgress: progress.update,
    signal,
  });
  progress.end();
  return {
    url,
    transport: 'http',
    connections: result.connections,
    durationS: result.durationS,
    requests: result.requests,
    rps: result.rps,
    errors: result.errors,
    latency: result.latency,
    ...(result.stream
      ? { stream: { firstChunk: result.stream.firstChunk, chunkGap: result.stream.chunkGap, chunks: result.stream.chunks, chunksPerS: result.stream.chunksPerS } }
      : {}),
  };
}

function parseUrl(text: string, ws: boolean): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url is not a URL: ${text}`);
  }
  if (ws) {
    if (url.protocol === 'http:' || url.protocol === 'https:') url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`--url must be http(s):// or ws(s):// (got ${url.protocol})`);
  } else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url must be http:// or https:// (got ${url.protocol}; use --ws for WebSocket)`);
  }
  return url.href;
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const match = /^([^:=\s]+)\s*[:=]\s*(.*)$/.exec(line);
    if (!match) throw new UsageError(`--header must look like "Name: value" (got "${line}")`);
    // Both groups are mandatory in the pattern, so a match holds them.
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

/** With --stream, a JSON object body gets `"stream": true` unless it already says. */
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

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function progressLine(stderr: BenchOutput['stderr']): { update: (p: LoadProgress) => void; end: () => void } {
  let written = false;
  return {
    update(p) {
      const line = `${String(p.elapsedS).padStart(4)} s  ${integer.format(p.lastSecond).padStart(9)} req/s  ${integer.format(p.total).padStart(11)} total  ${integer.format(p.errors)} errors`;
      stderr.write(stderr.isTTY ? `\r${line}` : `${line}\n`);
      written = true;
    },
    end() {
      if (written && stderr.isTTY) stderr.write('\n');
    },
  };
}

function percentiles(s: LatencySummary): string {
  return `p50 ${s.p50}  p90 ${s.p90}  p99 ${s.p99}  p99.9 ${s.p99_9}  max ${s.max}`;
}

export function renderReport(report: BenchReport): string {
  const e = report.errors;
  const detail = [
    ...Object.entries(e.byStatus).map(([status, count]) => `${status}: ${count}`),
    ...(e.connection ? [`connection: ${e.connection}`] : []),
    ...(e.timeouts ? [`timeouts: ${e.timeouts}`] : []),
    ...(e.mismatches ? [`mismatches: ${e.mismatches}`] : []),
  ];
  const lines = [
    `${report.url} over ${report.transport === 'ws' ? `WebSocket, ${report.connections} sockets × ${report.inFlightPerSocket} in flight` : `HTTP, ${report.connections} connections`}, ${report.durationS} s`,
    `  requests     ${integer.format(report.requests)} ok  (${integer.format(report.rps)} req/s)`,
    `  errors       ${integer.format(e.total)}${detail.length ? `  (${detail.join(', ')})` : ''}`,
    `  latency ms   ${percentiles(report.latency)}`,
  ];
  if (report.stream) {
    lines.push(
      `  first chunk  ${percentiles(report.stream.firstChunk)}`,
      `  chunk gap    ${percentiles(report.stream.chunkGap)}`,
      `  chunks       ${integer.format(report.stream.chunks)}  (${integer.format(report.stream.chunksPerS)} /s)`,
    );
  }
  return lines.join('\n') + '\n';
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number of seconds');
  return n;
}

export function registerBenchCommand(program: Command): Command {
  return program
    .command('bench')
    .description('load-test an endpoint: throughput, errors by status, latency percentiles (and chunk timings for streams)')
    .requiredOption('--url <url>', 'endpoint URL, e.g. http://127.0.0.1:8080/inference/echo')
    .option('-c, --connections <n>', 'concurrent connections (with --ws: sockets)', positiveInteger, 100)
    .option('-d, --duration <s>', 'seconds to measure', seconds, 10)
    .option('-w, --warmup <s>', 'seconds of load before measuring', seconds, 0)
    .option('-b, --body <file>', 'file holding the request body (JSON); the method defaults to POST with one')
    .option('-m, --method <method>', 'HTTP method')
    .option('-H, --header <header>', 'request header "Name: value" (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--stream', 'ask for a streamed answer ("stream": true) and time its chunks')
    .option('--ws', 'send the requests over a WebSocket instead of HTTP')
    .option('--inflight <n>', 'requests in flight per WebSocket', positiveInteger, 1)
    .option('--json', 'print the report as JSON on stdout')
    .action(async (o: { url: string; connections: number; duration: number; warmup: number; body?: string; method?: string; header: string[]; stream?: boolean; ws?: boolean; inflight: number; json?: boolean }) => {
      process.exitCode = await runBenchCommand({
        url: o.url,
        connections: o.connections,
        duration: o.duration,
        warmup: o.warmup,
        body: o.body,
        method: o.method,
        headers: o.header,
        stream: o.stream,
        ws: o.ws,
        inflight: o.inflight,
        json: o.json,
      });
    });
}
