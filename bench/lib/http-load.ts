/**
 * HTTP load with autocannon, run programmatically in this process (never in the server's): an
 * optional warm-up run whose numbers are dropped, then the measured run. Latencies of successful
 * responses go into our own hdr histogram (explicit range and precision, see latency.ts) rather
 * than autocannon's summary, so p99.9 keeps its resolution and repetitions can be merged.
 *
 * Streamed responses: autocannon reports a response when it is complete; to see the stream we hook
 * each client (autocannon's `setupClient`) and time the arrivals of body bytes: time to first
 * chunk after the request was written, and the gaps between later arrivals. Chunks that share one
 * TCP read arrive together and show as ~0 gaps; that is what the client observes.
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import type { EventEmitter } from 'node:events';
import { createLatencyHistogram, encodeHistogram, recordMs, summarize, type Histogram, type LatencySummary } from './latency.js';

export interface HttpLoadOptions {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | Buffer | undefined;
  /** Concurrent connections, one request in flight on each. */
  connections: number;
  durationS: number;
  /** Seconds of load before the measured run (numbers dropped). */
  warmupS?: number | undefined;
  /** Seconds after which a request counts as timed out. */
  timeoutS?: number;
  /** Checks a response body; a false answer counts the response as a mismatch, not a success. */
  verifyBody?: ((body: string) => boolean) | undefined;
  /** Time body arrivals (time to first chunk, inter-chunk gaps). */
  stream?: boolean | undefined;
  /** About once a second during the measured run. */
  onProgress?: (progress: LoadProgress) => void;
  /** Stops the measured run early; what was measured so far is reported. */
  signal?: AbortSignal;
}

export interface LoadProgress {
  elapsedS: number;
  /** Successful responses (or completed WebSocket requests) in the last second. */
  lastSecond: number;
  total: number;
  /** Failed requests so far (non-2xx, connection errors, timeouts). */
  errors: number;
}

export interface ErrorCounts {
  total: number;
  /** Non-2xx responses by status code (HTTP) or error code (WebSocket). */
  byStatus: Record<string, number>;
  /** Connection errors and resets (HTTP) or sockets that closed mid-request (WebSocket). */
  connection: number;
  timeouts: number;
  /** 2xx responses whose body failed verification. */
  mismatches: number;
}

export interface StreamTimings {
  firstChunk: LatencySummary;
  firstChunkHistogram: string;
  chunkGap: LatencySummary;
  chunkGapHistogram: string;
  chunks: number;
  chunksPerS: number;
}

export interface HttpLoadResult {
  kind: 'http';
  url: string;
  connections: number;
  durationS: number;
  /** Successful responses: 2xx and, when verified, a matching body. */
  requests: number;
  rps: number;
  bytes: number;
  errors: ErrorCounts;
  latency: LatencySummary;
  latencyHistogram: string;
  stream?: StreamTimings;
}

/** The part of autocannon's programmatic API used here (it ships no types). */
interface AutocannonResult {
  errors: number;
  timeouts: number;
  mismatches: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonClient extends EventEmitter {}
interface AutocannonInstance extends EventEmitter {
  stop(): void;
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export async function measureHttp(options: HttpLoadOptions): Promise<HttpLoadResult> {
  validate(options);
  if (options.warmupS && options.warmupS > 0) await runOnce(options, options.warmupS, false);
  return runOnce(options, options.durationS, true);
}

function validate(options: HttpLoadOptions): void {
  if (!/^https?:\/\//.test(options.url)) throw new Error(`url must start with http:// or https:// (got ${options.url})`);
  if (!Number.isInteger(options.connections) || options.connections < 1) throw new Error('connections must be a positive integer');
  if (!(options.durationS > 0)) throw new Error('duration must be a positive number of seconds');
}

/** The caller's headers, with `content-type: application/json` for a body whose type it does not name. */
export function requestHeaders(options: Pick<HttpLoadOptions, 'headers' | 'body'>): Record<string, string> {
  const headers: Record<string, string> = { ...options.headers };
  const named = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
  if (options.body !== undefined && !named.has('content-type')) headers['content-type'] = 'application/json';
  return headers;
}

function runOnce(options: HttpLoadOptions, durationS: number, measured: boolean): Promise<HttpLoadResult> {
  const latency = createLatencyHistogram();
  const firstChunk = options.stream ? createLatencyHistogram() : undefined;
  const chunkGap = options.stream ? createLatencyHistogram() : undefined;
  let ok = 0;
  let bytes = 0;
  let chunks = 0;
  let okThisSecond = 0;
  let progress: NodeJS.Timeout | undefined;
  let startedAt = performance.now();

  const setupClient = firstChunk && chunkGap ? (client: AutocannonClient) => timeChunks(client, firstChunk, chunkGap, () => chunks++) : undefined;

  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        headers: requestHeaders(options),
        body: options.body,
        connections: options.connections,
        duration: durationS,
        timeout: options.timeoutS ?? 10,
        pipelining: 1,
        ...(options.verifyBody ? { verifyBody: options.verifyBody } : {}),
        ...(setupClient ? { setupClient } : {}),
      },
      (err, result) => {
        const elapsedS = (performance.now() - startedAt) / 1000;
        options.signal?.removeEventListener('abort', stop);
        if (progress) clearInterval(progress);
        if (err) {
          latency.destroy();
          firstChunk?.destroy();
          chunkGap?.destroy();
          reject(err);
          return;
        }
        const requests = Math.max(0, ok - result.mismatches);
        const outcome: HttpLoadResult = {
          kind: 'http',
          url: options.url,
          connections: options.connections,
          durationS: round(elapsedS, 3),
          requests,
          rps: round(requests / elapsedS, 1),
          bytes,
          errors: countErrors(result),
          latency: summarize(latency),
          latencyHistogram: encodeHistogram(latency),
          ...(firstChunk && chunkGap ? { stream: streamTimings(firstChunk, chunkGap, chunks, elapsedS) } : {}),
        };
        latency.destroy();
        firstChunk?.destroy();
        chunkGap?.destroy();
        resolve(outcome);
      },
    );
    const stop = (): void => instance.stop();
    if (measured) options.signal?.addEventListener('abort', stop, { once: true });
    instance.once('start', () => {
      startedAt = performance.now();
    });
    let failedThisSecond = 0;
    instance.on('response', (_client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        okThisSecond++;
        bytes += resBytes;
        recordMs(latency, responseTimeMs);
      } else {
        failedThisSecond++;
      }
    });
    instance.on('reqError', () => failedThisSecond++);
    if (measured && options.onProgress) {
      const onProgress = options.onProgress;
      let okTotal = 0;
      let failedTotal = 0;
      instance.once('start', () => {
        progress = setInterval(() => {
          okTotal += okThisSecond;
          failedTotal += failedThisSecond;
          onProgress({ elapsedS: Math.round((performance.now() - startedAt) / 1000), lastSecond: okThisSecond, total: okTotal, errors: failedTotal });
          okThisSecond = 0;
          failedThisSecond = 0;
        }, 1000);
      });
    }
  });
}

/**
 * One request is in flight per client (pipelining 1), so a client's 'request' event starts the
 * clock for the next body bytes it receives. Only bodies of 2xx responses are timed: an error
 * answer is not a stream.
 */
function timeChunks(client: AutocannonClient, firstChunk: Histogram, chunkGap: Histogram, countChunk: () => void): void {
  let requestAt = 0;
  let lastChunkAt = 0;
  let success = false;
  client.on('request', () => {
    requestAt = performance.now();
    lastChunkAt = 0;
    success = false;
  });
  client.on('headers', (head: { statusCode: number }) => {
    success = head.statusCode >= 200 && head.statusCode < 300;
  });
  client.on('body', () => {
    if (!success) return;
    const now = performance.now();
    countChunk();
    if (lastChunkAt === 0) recordMs(firstChunk, now - requestAt);
    else recordMs(chunkGap, now - lastChunkAt);
    lastChunkAt = now;
  });
}

function streamTimings(firstChunk: Histogram, chunkGap: Histogram, chunks: number, elapsedS: number): StreamTimings {
  return {
    firstChunk: summarize(firstChunk),
    firstChunkHistogram: encodeHistogram(firstChunk),
    chunkGap: summarize(chunkGap),
    chunkGapHistogram: encodeHistogram(chunkGap),
    chunks,
    chunksPerS: round(chunks / elapsedS, 1),
  };
}

function countErrors(result: AutocannonResult): ErrorCounts {
  const byStatus: Record<string, number> = {};
  let non2xx = 0;
  for (const [status, { count }] of Object.entries(result.statusCodeStats)) {
    if (status.startsWith('2')) continue;
    byStatus[status] = count;
    non2xx += count;
  }
  // autocannon counts a timeout as an error too.
  const connection = result.errors - result.timeouts;
  return { total: non2xx + result.errors + result.mismatches, byStatus, connection, timeouts: result.timeouts, mismatches: result.mismatches };
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
