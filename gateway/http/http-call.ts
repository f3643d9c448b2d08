/**
 * One HTTP request as a CallSink: writes the replica's frames to the uWS response. Every write
 * happens after an await (frames arrive from a MessagePort), so each is corked; nothing touches
 * `res` once the client aborted. Streams: chunked transfer encoding, or SSE when asked; a chunk
 * is acknowledged (credit back to the replica) only once the socket took it.
 *
 * Coalescing: what a stream gets in one turn (its head, the runs of chunks from the replica's
 * batch, its end) is framed and written once, in one cork, at the end of that turn's synchronous
 * run (a microtask), so one socket send carries it all. Nothing waits for a later chunk: a lone
 * chunk leaves in the turn it arrived.
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
import { runLength, type ChunkRun, RUN_MAX_BYTES } from '../../workers/protocol/chunk-run.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import type { Call, CallSink } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { sendFile, sendFileBytes, type FileSendState } from './file-response.js';
import { sendSliced, SLICE_BYTES } from './sliced-body.js';
import type { Stallable, StallWatch } from './stall-watch.js';
import { writeError } from './respond.js';
import { statusLine } from './status-lines.js';
import { contentTypeOf, frameEnd, frameError, frameFlush, frameRun, joinFramed, type FramedRun, type StreamFraming } from './stream-framing.js';

const STATUS_200 = statusLine(200);

/** How a stream ends once its chunks are out: a last piece, then the end of the body, or a cut connection. */
interface Ending {
  last: FramedRun | undefined;
  /** Cut the connection after the last piece instead of ending the body (a raw stream that failed). */
  cut: boolean;
}

const pieceBytes = (piece: FramedRun): number => (typeof piece === 'string' ? piece.length : piece.byteLength);

export class HttpCall implements CallSink, FileSendState, Stallable {
  aborted = false;
  call: Call | undefined;
  onAbort?: () => void;
  private streaming = false;
  /** The status line and headers of the stream, written with the first write. */
  private headPending = false;
  /** Framed runs not written yet: this turn's, or those waiting for the socket to drain. */
  private queued: FramedRun[] = [];
  private queuedBytes = 0;
  private writeScheduled = false;
  /** A write left bytes in uWS's buffer: nothing more is written until the writable handler. */
  private blocked = false;
  /** Chunks queued or written while blocked, whose credit waits for the socket. */
  private held = 0;
  /** The stream's response is over (ended or cut): `res` may already serve another request. */
  private ended = false;
  /** How the stream ends (end, error event, cut), once the queued chunks are out. */
  private ending: Ending | undefined;
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
    this.queued = [];
    this.queuedBytes = 0;
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
    // Written with the stream's first chunks when they came in the same batch (one send for both),
    // else alone at the end of this turn.
    this.headPending = true;
    this.scheduleWrite();
    this.res.onWritable(() => {
      this.onProgress();
      return this.writeQueued();
    });
  }

  onChunks(run: ChunkRun): void {
    if (this.aborted || this.ended) return;
    const framed = frameRun(this.framing, this.streamId, run);
    this.queued.push(framed);
    this.queuedBytes += pieceBytes(framed);
    this.held += runLength(run);
    this.scheduleWrite();
  }

  /**
   * One write at the end of this turn's synchronous run: the runs of one replica batch (and of
   * every stream in it) arrive in that run, and each stream sends them in one cork.
   */
  private scheduleWrite(): void {
    if (this.blocked || this.writeScheduled) return;
    this.writeScheduled = true;
    queueMicrotask(this.writeTask);
  }

  private readonly writeTask = (): void => {
    this.writeQueued();
  };

  private writeHead(): void {
    const res = this.res;
    res.writeStatus(STATUS_200);
    res.writeHeader('content-type', contentTypeOf(this.framing));
    if (this.framing !== 'raw' && this.framing !== 'ndjson') res.writeHeader('cache-control', 'no-cache');
    res.writeHeader('x-content-type-options', 'nosniff');
    res.writeHeader('x-switchyard-stream', this.streamId);
  }

  /**
   * Writes the queued runs: joined into one write while they are small, each on its own past
   * RUN_MAX_BYTES (a join would copy large chunks for nothing). Stops at the first write that
   * leaves bytes in uWS's buffer; the rest waits for the writable handler.
   */
  private writePieces(): boolean {
    const res = this.res;
    if (this.queuedBytes <= RUN_MAX_BYTES) {
      const one = joinFramed(this.queued);
      this.queued = [];
      this.queuedBytes = 0;
      return res.write(one);
    }
    let ok = true;
    while (ok && this.queued.length > 0) {
      const piece = this.queued.shift()!;
      this.queuedBytes -= pieceBytes(piece);
      ok = res.write(piece);
    }
    return ok;
  }

  /**
   * Writes what is queued (and the head, and the ending when due) in one cork, then gives back the
   * credit of everything written; with bytes left in uWS's buffer the rest waits for the writable
   * handler (this, again) and the credit is held, which pauses the generator.
   */
  private writeQueued(): boolean {
    this.writeScheduled = false;
    if (this.aborted || this.ended) return true;
    const res = this.res;
    let ok = true;
    const wrote = this.queued.length > 0;
    let ending: Ending | undefined;
    // Each write first flushes what uWS holds; with nothing queued, the cork alone flushes it.
    res.cork(() => {
      if (this.headPending) {
        this.headPending = false;
        this.writeHead();
      }
      if (wrote) ok = this.writePieces();
      if (!ok) return;
      ending = this.ending;
      if (!ending) {
        // Completes the last chunk on the wire (see frameFlush).
        if (wrote && this.flush) ok = res.write(this.flush);
        return;
      }
      this.ended = true;
      this.ending = undefined;
      if (ending.last) res.write(ending.last);
      // uWS sends a chunk's closing CRLF only with the next write, and a client reading chunk by
      // chunk would lose a cut stream's error line with it. writeHeader writes its bytes as they
      // are (`name: value` CRLF): the CRLF, then the size line of a chunk that never comes (the
      // colon sits in a quoted chunk extension), so no client takes the body for complete.
      if (ending.cut) res.writeHeader('\r\n1;cut="', '"');
      else res.end();
    });
    // The cut comes after the cork, which is what hands the last line to the socket; closing
    // inside it would drop the line unsent.
    if (ending?.cut) res.close();
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
    if (n > 0 && !this.ended) this.endpoint.ack(this.call!, n);
    return true;
  }

  /** Ends the stream once every chunk before it is out (a cut must not drop them). */
  private endAfterChunks(ending: Ending): void {
    this.ending = ending;
    if (!this.blocked) this.writeQueued();
  }

  onStreamEnd(returned?: unknown): void {
    if (this.aborted || this.ended) return;
    this.endAfterChunks({ last: frameEnd(this.framing, returned), cut: false });
  }

  onError(err: SwitchyardError): void {
    if (this.aborted || this.ended) return;
    const res = this.res;
    if (!this.streaming) {
      const framing = this.framing;
      res.cork(() => (typeof framing === 'object' ? framing.writeError(res, err) : writeError(res, err)));
    } else if (this.framing !== 'raw') {
      this.endAfterChunks({ last: frameError(this.framing, err), cut: false });
    } else {
      // A chunked body already under way: a final line carries the code, then the connection is
      // cut so the body can never pass for complete.
      this.endAfterChunks({ last: frameError('raw', err), cut: true });
    }
  }
}
