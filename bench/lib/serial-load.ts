/**
 * One request at a time on one kept-alive connection, timed from the write of the request to the
 * last byte of its answer: the latency of a lone request, which is what a client at one connection
 * sees. A general load generator spends tens of µs of its own per request (parsing, events,
 * timers) and at one connection that lands inside every measurement; this client writes one
 * prebuilt request and reads a Content-Length answer with a few index lookups, so what it adds is
 * small and the same for every server, and differences between servers are theirs.
 */
import { connect, type Socket } from 'node:net';
import { createLatencyHistogram, encodeHistogram, recordMs, summarize } from './latency.js';
import { requestHeaders, round, type ErrorCounts, type HttpLoadResult } from './http-load.js';

export interface SerialLoadOptions {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  durationS: number;
  /** Checks each answer's body; a false answer counts as a mismatch, not a success. */
  verifyBody?: ((body: string) => boolean) | undefined;
  /** Seconds one answer may take before the run fails. */
  timeoutS?: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;

function requestBytes(options: SerialLoadOptions, url: URL): Buffer {
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST');
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: Record<string, string> = { host: url.host, ...requestHeaders(options) };
  if (body) headers['content-length'] = String(body.byteLength);
  const head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
}

export function measureSerial(options: SerialLoadOptions): Promise<HttpLoadResult> {
  const url = new URL(options.url);
  if (url.protocol !== 'http:') throw new Error(`url must start with http:// (got ${options.url})`);
  if (!(options.durationS > 0)) throw new Error('duration must be a positive number of seconds');
  const request = requestBytes(options, url);
  const latency = createLatencyHistogram();
  const errors: ErrorCounts = { total: 0, byStatus: {}, connection: 0, timeouts: 0, mismatches: 0 };
  const timeoutMs = (options.timeoutS ?? 10) * 1000;
  let ok = 0;
  let bytes = 0;

  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const endAt = startedAt + options.durationS * 1000;
    let socket: Socket;
    let pending: Buffer = Buffer.alloc(0);
    let sentAt = 0n;
    let timer: NodeJS.Timeout | undefined;
    let done = false;

    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const elapsedS = (performance.now() - startedAt) / 1000;
      if (err) {
        latency.destroy();
        reject(err);
        return;
      }
      const result: HttpLoadResult = {
        kind: 'http',
        url: options.url,
        connections: 1,
        durationS: round(elapsedS, 3),
        requests: ok,
        rps: round(ok / elapsedS, 1),
        bytes,
        errors,
        latency: summarize(latency),
        latencyHistogram: encodeHistogram(latency),
      };
      latency.destroy();
      resolve(result);
    };

    const send = (): void => {
      if (performance.now() >= endAt) {
        finish();
        return;
      }
      pending = Buffer.alloc(0);
      sentAt = process.hrtime.bigint();
      socket.write(request);
    };

    const onData = (chunk: Buffer): void => {
      pending = pending.byteLength === 0 ? chunk : Buffer.concat([pending, chunk]);
      const headerEnd = pending.indexOf(HEADER_END);
      if (headerEnd < 0) return;
      const head = pending.toString('latin1', 0, headerEnd);
      const length = CONTENT_LENGTH.exec(head);
      if (!length) {
        finish(new Error(`${options.url} answered without a Content-Length (${head.split('\r\n')[0]})`));
        return;
      }
      const total = headerEnd + HEADER_END.byteLength + Number(length[1]);
      if (pending.byteLength < total) return;
      const elapsedMs = Number(process.hrtime.bigint() - sentAt) / 1e6;
      const status = head.slice(9, 12);
      bytes += total;
      if (!status.startsWith('2')) {
        errors.byStatus[status] = (errors.byStatus[status] ?? 0) + 1;
        errors.total++;
      } else if (options.verifyBody && !options.verifyBody(pending.toString('utf8', total - Number(length[1]), total))) {
        errors.mismatches++;
        errors.total++;
      } else {
        ok++;
        recordMs(latency, elapsedMs);
      }
      send();
    };

    const open = (): void => {
      socket = connect({ host: url.hostname, port: Number(url.port) || 80, noDelay: true });
      socket.on('connect', send);
      socket.on('data', onData);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (done) return;
        // A server that closed the connection: count it and go on with a new one.
        errors.connection++;
        errors.total++;
        if (errors.connection > 100) finish(new Error(`${options.url} closed the connection ${errors.connection} times`));
        else open();
      });
    };

    // One answer taking this long means the server is stuck: the run fails rather than hangs.
    const watch = (): void => {
      timer = setTimeout(() => {
        if (sentAt !== 0n && Number(process.hrtime.bigint() - sentAt) / 1e6 > timeoutMs) {
          finish(new Error(`${options.url} did not answer within ${timeoutMs / 1000} s`));
        } else {
          watch();
        }
      }, timeoutMs);
      timer.unref();
    };
    watch();
    open();
  });
}
