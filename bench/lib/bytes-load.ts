/**
 * HTTP load for large response bodies (files). autocannon parses HTTP in JavaScript and appends
 * every body chunk to a string (`req.body += data`), which holds it near 70 MB/s on 1 MB bodies
 * whatever the server does: it would measure itself. Here bodies stay bytes on node:http
 * keep-alive sockets; they are only counted, and decoded only where a body is checked (warm-up).
 *
 * Closed loop like autocannon with pipelining 1: each connection sends its next request when the
 * previous answer is complete. The result has autocannon's result shape (HttpLoadResult).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { createLatencyHistogram, encodeHistogram, recordMs, summarize } from './latency.js';
import { round, type ErrorCounts, type HttpLoadResult } from './http-load.js';

export interface BytesLoadOptions {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  connections: number;
  durationS: number;
  timeoutS?: number;
  /** Checks each body (as text, the way autocannon hands it over); false counts a mismatch. */
  verifyBody?: ((body: string) => boolean) | undefined;
}

export async function measureBytes(options: BytesLoadOptions): Promise<HttpLoadResult> {
  if (!/^http:\/\//.test(options.url)) throw new Error(`url must start with http:// (got ${options.url})`);
  if (!Number.isInteger(options.connections) || options.connections < 1) throw new Error('connections must be a positive integer');
  if (!(options.durationS > 0)) throw new Error('duration must be a positive number of seconds');

  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const latency = createLatencyHistogram();
  const errors: ErrorCounts = { total: 0, byStatus: {}, connection: 0, timeouts: 0, mismatches: 0 };
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST');
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: Record<string, string> = { ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}), ...options.headers };
  const timeoutMs = (options.timeoutS ?? 10) * 1000;
  let requests = 0;
  let bytes = 0;
  const startedAt = performance.now();
  const until = startedAt + options.durationS * 1000;

  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const sentAt = performance.now();
      const req = http.request(options.url, { method, agent, headers }, (res) => {
        const status = res.statusCode ?? 0;
        const parts: Buffer[] | undefined = options.verifyBody ? [] : undefined;
        let received = 0;
        res.on('data', (data: Buffer) => {
          received += data.length;
          parts?.push(data);
        });
        res.on('end', () => {
          if (status < 200 || status >= 300) {
            errors.total++;
            errors.byStatus[status] = (errors.byStatus[status] ?? 0) + 1;
          } else if (parts && !options.verifyBody!(Buffer.concat(parts).toString('utf8'))) {
            errors.total++;
            errors.mismatches++;
          } else {
            requests++;
            bytes += received;
            recordMs(latency, performance.now() - sentAt);
          }
          resolve();
        });
        res.on('error', () => undefined);
      });
      let timedOut = false;
      req.setTimeout(timeoutMs, () => {
        timedOut = true;
        errors.total++;
        errors.timeouts++;
        req.destroy();
        resolve();
      });
      req.on('error', () => {
        // A timed-out request was counted already; destroying it is what raised this.
        if (timedOut) return;
        errors.total++;
        errors.connection++;
        resolve();
      });
      req.end(body);
    });

  await Promise.all(
    Array.from({ length: options.connections }, async () => {
      while (performance.now() < until) await one();
    }),
  );
  const elapsedS = (performance.now() - startedAt) / 1000;
  agent.destroy();
  const result: HttpLoadResult = {
    kind: 'http',
    url: options.url,
    connections: options.connections,
    durationS: round(elapsedS, 3),
    requests,
    rps: round(requests / elapsedS, 1),
    bytes,
    errors,
    latency: summarize(latency),
    latencyHistogram: encodeHistogram(latency),
  };
  latency.destroy();
  return result;
}
