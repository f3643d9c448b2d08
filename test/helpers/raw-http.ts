/**
 * HTTP/1.1 on a raw socket, for tests that need to see the bytes: several requests on one
 * connection, what arrives in which read, and whether the server closed the connection.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface Exchange {
  /** Every byte received, in order. */
  bytes: Buffer;
  /** Each `data` event's bytes, in order. */
  reads: Buffer[];
  /** The server closed the connection (rather than the wait ending). */
  closed: boolean;
}

/**
 * Sends `request` and collects what comes back until the server closes, `done(bytes)` says
 * enough, or `waitMs` passes (a wait limit, not an assertion).
 */
export function exchange(port: number, request: string | Buffer, options: { done?: (bytes: Buffer) => boolean; waitMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const reads: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: Buffer.concat(reads), reads, closed });
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? 10_000);
    socket.on('data', (d) => {
      reads.push(d);
      if (options.done?.(Buffer.concat(reads))) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', (err) => (finished ? undefined : reject(err)));
  });
}

/** Parses responses one after another; `bodyless[i]` marks the answer to a HEAD. Stops at the first incomplete one. */
export function parseResponses(bytes: Buffer, bodyless: boolean[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let p = headEnd + 4;
    let body: Buffer;
    if (bodyless[out.length]) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(bytes.subarray(p, lineEnd).toString('latin1').split(';')[0]!, 16);
        if (size === 0) {
          // The last chunk, then trailer lines up to an empty one.
          const end = bytes.indexOf('\r\n\r\n', lineEnd);
          if (end >= 0) {
            complete = true;
            p = end + 4;
          }
          break;
        }
        if (bytes.length < lineEnd + 2 + size + 2) break;
        parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (bytes.length < p + length) break;
      body = bytes.subarray(p, p + length);
      p += length;
    }
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body });
    at = p;
  }
  return out;
}

/**
 * The data of the complete chunks in `bytes`, the body of one chunked response (headers
 * included): a chunk counts once its closing CRLF is there.
 */
export function completeChunks(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let p = bytes.indexOf('\r\n\r\n') + 4;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', p);
    if (lineEnd < 0) return chunks;
    const size = parseInt(bytes.subarray(p, lineEnd).toString('latin1').split(';')[0]!, 16);
    if (!(size > 0) || bytes.length < lineEnd + 2 + size + 2) return chunks;
    if (bytes.subarray(lineEnd + 2 + size, lineEnd + 4 + size).toString('latin1') !== '\r\n') throw new Error('a chunk without its CRLF');
    chunks.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    p = lineEnd + 4 + size;
  }
}
