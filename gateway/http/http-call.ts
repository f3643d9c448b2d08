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
 *
 * Stalls: while bytes wait for the socket (a stream or a file), the response is on the stall
 * watch; each writable event is progress. A client that takes nothing for the stall timeout is
 * cut (uWS then reports it aborted, which cancels the request and frees its slot).
 */
import type { HttpResponse } from '../../native/uws.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import type { Call, CallSink } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { sendFile, sendFileBytes, type FileSendState } from './file-response.js';
import { sendSliced, SLICE_BYTES } from './sliced-body.js';
import type { Stallable, StallWatch } from './stall-watch.js';
import { writeError } from './respond.js';
import { statusLine } from './status-lines.js';
import { contentTypeOf, frameChunk, frameEnd, frameError, frameFlush, type StreamFraming } from './stream-framing.js';

const STATUS_200 = statusLine(200);

export class HttpCall implements CallSink, FileSendState, Stallable {
  aborted = false;
  call: Call | undefined;
  onAbort?: () => void;
  private streaming = false;
  /** Chunks not written yet: this turn's, or those waiting for the socket to drain. */
  private readonly queued: Uint8Array[] = [];
  private writeScheduled = false;
  /** A write left bytes in uWS's buffer: nothing more is written until the writable handler. */
  private blocked = false;
  /** Chunks queued or written while blocked, whose credit waits for the socket. */
  private held = 0;
  /** The stream's response is over (ended or cut): `res` may already serve another request. */
  private ended = false;
  /** How the stream ends (end, SSE error event, cut), once the queued chunks are out. */
  private finish: (() => void) | undefined;
  private streamId = '';
  lastProgressAt = 0;
  private readonly flush: Uint8Array | undefined;

  constructor(
    private readonly res: HttpResponse,
    private readonly endpoint: Endpoint,
    private readonly framing: StreamFraming,
    private readonly range: string,
    private readonly stalls: StallWatch,
  ) {
    this.flush = frameFlush(framing);
  }

  /** Bytes wait for the socket: the stall clock runs from now unless it already runs. */
  onBlocked(): void {
    if (this.lastProgressAt === 0) this.lastProgressAt = this.stalls.now();
    this.stalls.watch(this);
  }

  /** The socket took bytes. */
  onProgress(): void {
    this.lastProgressAt = this.stalls.now();
  }

  /** Nothing waits for the socket any more. */
  onUnblocked(): void {
    this.lastProgressAt = 0;
    this.stalls.unwatch(this);
  }

  onStalled(): void {
    if (this.aborted) return;
    this.res.close();
  }

  /** uWS's onAborted: the client is gone. */
  abort(): void {
    this.aborted = true;
    this.queued.length = 0;
    this.stalls.unwatch(this);
    this.onAbort?.();
    if (this.call) this.endpoint.leave(this.call, this);
  }

  onResult(body: Uint8Array, contentType: string): void {
    if (this.aborted) return;
    const res = this.res;
    const fileType = this.call?.env.fileType;
    if (fileType !== undefined && contentType === fileType) {
      // The predictor answered a file request with the file's bytes: served as a file, from memory.
      sendFileBytes(res, this, body, contentType, this.range);
      return;
    }
    const writeHead = (): void => {
      res.writeStatus(STATUS_200);
      res.writeHeader('content-type', contentType);
    };
    if (body.byteLength > SLICE_BYTES) {
      sendSliced(res, body, writeHead, this);
      return;
    }
    res.cork(() => {
      writeHead();
      res.end(body);
    });
  }

  onFile(path: string, size: number, contentType: string, remove: boolean, fd: number): void {
    void sendFile(this.res, this, { path, fd, size, contentType, remove }, this.range);
  }

  onStreamStart(streamId: string): void {
    if (this.aborted) return;
    this.streaming = true;
    this.streamId = streamId;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(STATUS_200);
      res.writeHeader('content-type', contentTypeOf(this.framing));
      if (this.framing !== 'raw' && this.framing !== 'ndjson') res.writeHeader('cache-control', 'no-cache');
      res.writeHeader('x-content-type-options', 'nosniff');
      res.writeHeader('x-switchyard-stream', streamId);
    });
    res.onWritable(() => {
      this.onProgress();
      return this.writeQueued();
    });
  }

  onChunk(data: Uint8Array, seq: number): void {
    if (this.aborted || this.ended) return;
    this.queued.push(frameChunk(this.framing, this.streamId, seq, data));
    this.held++;
    if (!this.blocked && !this.writeScheduled) {
      this.writeScheduled = true;
      // The chunks of one replica batch arrive in one synchronous run: one cork (one send) for all.
      queueMicrotask(() => this.writeQueued());
    }
  }

  /**
   * Writes what is queued in one cork, then gives back the credit of everything written; with
   * bytes left in uWS's buffer the rest waits for the writable handler (this, again) and the
   * credit is held, which pauses the generator. Once all is out, the end of the stream (if due).
   */
  private writeQueued(): boolean {
    this.writeScheduled = false;
    if (this.aborted || this.ended) return true;
    const res = this.res;
    let ok = true;
    const wrote = this.queued.length > 0;
    // Each write first flushes what uWS holds; with nothing queued, the cork alone flushes it.
    res.cork(() => {
      while (ok && this.queued.length > 0) ok = res.write(this.queued.shift()!);
      // Completes the last chunk on the wire (see frameFlush), unless the stream ends now anyway.
      if (ok && wrote && !this.finish && this.flush) ok = res.write(this.flush);
    });
    if (!ok) {
      this.blocked = true;
      this.onBlocked();
      return false;
    }
    // Nothing is queued now and uWS holds at most the rest of one write: credit goes back.
    if (this.blocked) this.onUnblocked();
    this.blocked = false;
    const n = this.held;
    this.held = 0;
    for (let i = 0; i < n; i++) this.endpoint.ack(this.call!);
    const finish = this.finish;
    this.finish = undefined;
    if (finish) {
      this.ended = true;
      finish();
    }
    return true;
  }

  /** Ends the stream with `end` once every chunk before it is out (a cut must not drop them). */
  private endAfterChunks(end: () => void): void {
    this.finish = end;
    if (!this.blocked) this.writeQueued();
  }

  onStreamEnd(returned?: unknown): void {
    if (this.aborted || this.ended) return;
    const res = this.res;
    const last = frameEnd(this.framing, returned);
    this.endAfterChunks(() =>
      res.cork(() => {
        if (last) res.write(last);
        res.end();
      }),
    );
  }

  onError(err: SwitchyardError): void {
    if (this.aborted || this.ended) return;
    const res = this.res;
    if (!this.streaming) {
      const framing = this.framing;
      res.cork(() => (typeof framing === 'object' ? framing.writeError(res, err) : writeError(res, err)));
    } else if (this.framing !== 'raw') {
      this.endAfterChunks(() => res.cork(() => res.end(frameError(this.framing, err))));
    } else {
      // A chunked body already under way: a final line carries the code, then the connection is
      // cut so the body can never pass for complete. The cut comes after the cork, which is what
      // hands the line to the socket; closing inside it would drop the line unsent.
      this.endAfterChunks(() => {
        res.cork(() => {
          res.write(frameError('raw', err));
          // uWS sends a chunk's closing CRLF only with the next write, and a client reading
          // chunk by chunk would lose the line with it. writeHeader writes its bytes as they are
          // (`name: value` CRLF): the CRLF, then the size line of a chunk that never comes (the
          // colon sits in a quoted chunk extension), so no client takes the body for complete.
          res.writeHeader('\r\n1;cut="', '"');
        });
        res.close();
      });
    }
  }
}
