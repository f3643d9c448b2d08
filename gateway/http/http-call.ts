/**
 * One HTTP request as a CallSink: writes the replica's frames to the uWS response. Every write
 * happens after an await (frames arrive from a MessagePort), so each is corked; nothing touches
 * `res` once the client aborted. Streams: chunked transfer encoding, or SSE when asked; a chunk
 * is acknowledged (credit back to the replica) only once the socket took it.
 */
import type { HttpResponse } from '../../native/uws.js';
import type { SwitchyardError } from '../errors.js';
import type { Call, CallSink } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { sendFile, type FileSendState } from './file-response.js';
import { errorBody, writeError } from './respond.js';
import { statusLine } from './status-lines.js';

const STATUS_200 = statusLine(200);
const SSE_END = Buffer.from('event: end\ndata: {}\n\n');

/** `data:` lines for one SSE event; chunks with newlines become several data lines. */
function sseEvent(data: Uint8Array): Buffer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  return Buffer.from(`data: ${text.replace(/\r?\n/g, '\ndata: ')}\n\n`);
}

export class HttpCall implements CallSink, FileSendState {
  aborted = false;
  call: Call | undefined;
  onAbort?: () => void;
  private waitingForWritable = false;
  private unackedWrites = 0;
  private streaming = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly endpoint: Endpoint,
    private readonly sse: boolean,
    private readonly range: string,
  ) {}

  /** uWS's onAborted: the client is gone. */
  abort(): void {
    this.aborted = true;
    this.onAbort?.();
    if (this.call) this.endpoint.cancel(this.call);
  }

  onResult(body: Uint8Array, contentType: string): void {
    if (this.aborted) return;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(STATUS_200);
      res.writeHeader('content-type', contentType);
      res.end(body);
    });
  }

  onFile(path: string, size: number, contentType: string, remove: boolean): void {
    void sendFile(this.res, this, { path, size, contentType, remove }, this.range);
  }

  onStreamStart(): void {
    if (this.aborted) return;
    this.streaming = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(STATUS_200);
      if (this.sse) {
        res.writeHeader('content-type', 'text/event-stream');
        res.writeHeader('cache-control', 'no-cache');
      } else {
        res.writeHeader('content-type', 'text/plain; charset=utf-8');
      }
      res.writeHeader('x-content-type-options', 'nosniff');
    });
  }

  onChunk(data: Uint8Array): void {
    if (this.aborted) return;
    const res = this.res;
    let ok = true;
    res.cork(() => {
      ok = res.write(this.sse ? sseEvent(data) : data);
    });
    if (ok && !this.waitingForWritable) {
      this.endpoint.ack(this.call!);
      return;
    }
    // Backpressure: hold the credit until the socket drains, which pauses the generator.
    this.unackedWrites++;
    if (!this.waitingForWritable) {
      this.waitingForWritable = true;
      res.onWritable(() => {
        this.waitingForWritable = false;
        const n = this.unackedWrites;
        this.unackedWrites = 0;
        for (let i = 0; i < n; i++) this.endpoint.ack(this.call!);
        return true;
      });
    }
  }

  onStreamEnd(): void {
    if (this.aborted) return;
    const res = this.res;
    res.cork(() => {
      if (this.sse) res.write(SSE_END);
      res.end();
    });
  }

  onError(err: SwitchyardError): void {
    if (this.aborted) return;
    const res = this.res;
    if (this.streaming && !this.sse) {
      // A chunked body already under way: a final line carries the code, then the connection is
      // cut so the body can never pass for complete. The cut comes after the cork, which is what
      // hands the line to the socket; closing inside it would drop the line unsent.
      res.cork(() => res.write(`\n${errorBody(err)}\n`));
      res.close();
      return;
    }
    res.cork(() => {
      if (!this.streaming) writeError(res, err);
      else res.end(`event: error\ndata: ${errorBody(err)}\n\n`);
    });
  }
}
