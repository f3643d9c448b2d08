/**
 * One HTTP request as a CallSink: writes the replica's frames to the uWS response. Every write
 * happens after an await (frames arrive from a MessagePort), so each is corked; nothing touches
 * `res` once the client aborted. Streams: chunked transfer encoding, or SSE when asked; a chunk
 * is acknowledged (credit back to the replica) only once the socket took it.
 *
 * Backpressure: once a write leaves bytes in uWS's buffer, later chunks wait here (at most the
 * stream's credit of them) and the writable handler writes them. uWS does not drain its own
 * buffer on writable events while a handler is registered, so the handler always writes (or
 * corks, which drains): otherwise the bytes of a chunk would sit unsent until the generator
 * produced the next one.
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

/** `data:` lines for one SSE event; chunks with line breaks become several data lines. */
function sseEvent(data: Uint8Array): Buffer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  return Buffer.from(`data: ${text.replace(/\r\n|\r|\n/g, '\ndata: ')}\n\n`);
}

export class HttpCall implements CallSink, FileSendState {
  aborted = false;
  call: Call | undefined;
  onAbort?: () => void;
  private streaming = false;
  /** A write left bytes in uWS's buffer: chunks queue here until the socket drains. */
  private blocked = false;
  private readonly queued: Uint8Array[] = [];
  /** Chunks written or queued while blocked, whose credit waits for the socket. */
  private held = 0;
  /** How the stream ends (end, SSE error event, cut), once the queued chunks are out. */
  private finish: (() => void) | undefined;

  constructor(
    private readonly res: HttpResponse,
    private readonly endpoint: Endpoint,
    private readonly sse: boolean,
    private readonly range: string,
  ) {}

  /** uWS's onAborted: the client is gone. */
  abort(): void {
    this.aborted = true;
    this.queued.length = 0;
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
    res.onWritable(() => this.drain());
  }

  onChunk(data: Uint8Array): void {
    if (this.aborted) return;
    const payload = this.sse ? sseEvent(data) : data;
    if (this.blocked) {
      this.queued.push(payload);
      this.held++;
      return;
    }
    const res = this.res;
    let ok = true;
    res.cork(() => {
      ok = res.write(payload);
    });
    if (ok) {
      this.endpoint.ack(this.call!);
    } else {
      // Hold the credit until the socket drains, which pauses the generator.
      this.blocked = true;
      this.held++;
    }
  }

  /** The writable handler: queued chunks out, then credit back; the end of the stream once all is out. */
  private drain(): boolean {
    if (this.aborted) return true;
    const res = this.res;
    let ok = true;
    // Each write first flushes what uWS holds; with nothing queued, the cork alone flushes it.
    res.cork(() => {
      while (ok && this.queued.length > 0) ok = res.write(this.queued.shift()!);
    });
    if (!ok) return false;
    // Nothing is queued now and uWS holds at most the rest of one write: credit goes back.
    this.blocked = false;
    const n = this.held;
    this.held = 0;
    for (let i = 0; i < n; i++) this.endpoint.ack(this.call!);
    const finish = this.finish;
    this.finish = undefined;
    finish?.();
    return true;
  }

  /** Runs `end` now, or once the socket took what is waiting (a cut must not drop it). */
  private whenWritten(end: () => void): void {
    if (this.blocked) this.finish = end;
    else end();
  }

  onStreamEnd(): void {
    if (this.aborted) return;
    const res = this.res;
    this.whenWritten(() =>
      res.cork(() => {
        if (this.sse) res.write(SSE_END);
        res.end();
      }),
    );
  }

  onError(err: SwitchyardError): void {
    if (this.aborted) return;
    const res = this.res;
    if (!this.streaming) {
      res.cork(() => writeError(res, err));
    } else if (this.sse) {
      this.whenWritten(() => res.cork(() => res.end(`event: error\ndata: ${errorBody(err)}\n\n`)));
    } else {
      // A chunked body already under way: a final line carries the code, then the connection is
      // cut so the body can never pass for complete. The cut comes after the cork, which is what
      // hands the line to the socket; closing inside it would drop the line unsent.
      this.whenWritten(() => {
        res.cork(() => res.write(`\n${errorBody(err)}\n`));
        res.close();
      });
    }
  }
}
