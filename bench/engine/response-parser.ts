/**
 * A minimal HTTP/1.1 response parser for the load generator: status, the three headers that decide
 * framing and reuse (Content-Length, Transfer-Encoding: chunked, Connection), and the body as
 * chunks. One response at a time (no pipelining), bytes in as they come off the socket.
 *
 * Body pieces are reported as the server framed them: one `onChunk` per chunked-encoding chunk
 * (when it is complete), and for Content-Length or read-to-close bodies one per socket read. A
 * stream's chunk timings therefore follow the server's writes, as a client reading `data` events
 * of node's http module would see them.
 */

export interface ResponseEvents {
  /** The head is in. `keepAlive` false: the server will close (or HTTP/1.0 without keep-alive). */
  onHead(status: number, keepAlive: boolean): void;
  /** A body piece is complete; `data` is only a view, valid during the call. Only when `begin` asked for chunks. */
  onChunk(data: Buffer): void;
  /** The response is complete (all framed bytes, or the terminating chunk, arrived). */
  onComplete(): void;
}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
  Done,
}

const CR = 13;
const LF = 10;
const MAX_HEAD = 64 * 1024;
const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CONNECTION = Buffer.from('connection');
/** readHead's answer when the head is not complete yet. */
const INCOMPLETE = -1;

/** Does the header line at `at` have this (lower-case) name? ASCII letters and '-' compare case-blind with | 0x20. */
function matches(buffer: Uint8Array, at: number, end: number, name: Uint8Array): boolean {
  if (at + name.length >= end || buffer[at + name.length] !== 0x3a) return false;
  for (let i = 0; i < name.length; i++) if ((buffer[at + i]! | 0x20) !== name[i]) return false;
  return true;
}

/** The index of the next LF in [from, end), or -1. A loop: head lines are short, and it stays in JIT code. */
function lineFeed(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buffer[i] === LF) return i;
  return -1;
}

export class ResponseParser {
  private state = State.Done;
  /** The part of a head that arrived in an earlier read. */
  private head: Buffer | undefined;
  private remaining = 0;
  private line = '';
  private chunkParts: Buffer[] = [];
  private keepAlive = true;
  /** Set when the request was HEAD: the response has no body whatever it says. */
  private bodiless = false;
  /** Report body pieces with onChunk (streams); otherwise only count them. */
  private chunks = true;
  private bodyBytes = 0;
  // What the head said, while it is read.
  private status = 0;
  private length = -1;
  private chunked = false;
  private headKeepAlive = true;

  constructor(private readonly events: ResponseEvents) {}

  /** Expect a new response (call before writing each request). `chunks` false: body bytes are only counted (see `bytes`). */
  begin(bodiless = false, chunks = true): void {
    this.state = State.Head;
    this.head = undefined;
    this.bodiless = bodiless;
    this.chunks = chunks;
    this.bodyBytes = 0;
    if (this.chunkParts.length > 0) this.chunkParts = [];
    this.line = '';
  }

  get waiting(): boolean {
    return this.state !== State.Done;
  }

  /** True when the response so far ended at a point where the connection may carry the next one. */
  get reusable(): boolean {
    return this.keepAlive;
  }

  /** Has any byte of the response arrived? */
  get started(): boolean {
    return this.head !== undefined || this.state !== State.Head;
  }

  /** Body bytes of this response so far (chunked framing excluded). */
  get bytes(): number {
    return this.bodyBytes;
  }

  /**
   * Feeds the bytes `data[start, end)`. Returns an error message for bytes that are not HTTP,
   * undefined otherwise. Bytes past the end of the response (there should be none without
   * pipelining) are ignored.
   */
  execute(data: Buffer, start = 0, end = data.length): string | undefined {
    let offset = start;
    while (offset < end && this.state !== State.Done) {
      switch (this.state) {
        case State.Head: {
          const taken = this.readHead(data, offset, end);
          if (typeof taken === 'string') return taken;
          offset = taken;
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, end - offset);
          this.remaining -= n;
          this.bodyBytes += n;
          if (this.chunks) this.events.onChunk(data.subarray(offset, offset + n));
          offset += n;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.UntilClose:
          this.bodyBytes += end - offset;
          if (this.chunks) this.events.onChunk(data.subarray(offset, end));
          offset = end;
          break;
        case State.ChunkSize:
        case State.Trailer: {
          const lf = lineFeed(data, offset, end);
          const stop = lf === -1 ? end : lf;
          this.line += data.toString('latin1', offset, stop);
          offset = lf === -1 ? end : lf + 1;
          if (lf === -1) {
            if (this.line.length > 1024) return 'chunk size line too long';
            break;
          }
          const text = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
          this.line = '';
          if (this.state === State.Trailer) {
            if (text === '') this.finish();
            break;
          }
          const semicolon = text.indexOf(';');
          const size = parseInt(semicolon === -1 ? text : text.slice(0, semicolon), 16);
          if (!Number.isFinite(size) || size < 0) return `bad chunk size "${text.slice(0, 40)}"`;
          if (size === 0) this.state = State.Trailer;
          else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, end - offset);
          this.remaining -= n;
          this.bodyBytes += n;
          if (this.chunks) {
            const piece = data.subarray(offset, offset + n);
            if (this.remaining === 0) {
              if (this.chunkParts.length === 0) this.events.onChunk(piece);
              else {
                this.chunkParts.push(Buffer.from(piece));
                this.events.onChunk(Buffer.concat(this.chunkParts));
                this.chunkParts = [];
              }
            } else {
              this.chunkParts.push(Buffer.from(piece));
            }
          }
          offset += n;
          if (this.remaining === 0) {
            this.remaining = 2;
            this.state = State.ChunkDataEnd;
          }
          break;
        }
        case State.ChunkDataEnd: {
          // The CRLF after a chunk's data.
          const byte = data[offset]!;
          offset++;
          if (byte === LF) this.state = State.ChunkSize;
          else if (byte !== CR) return 'chunk data not followed by CRLF';
          break;
        }
      }
    }
    return undefined;
  }

  /**
   * The connection ended. A body read to the close is complete then; anything else that was still
   * expected is cut short: 'truncated' when part of the response came, 'empty' when none did.
   */
  close(): 'complete' | 'truncated' | 'empty' | 'idle' {
    if (this.state === State.Done) return 'idle';
    if (this.state === State.UntilClose) {
      this.finish();
      return 'complete';
    }
    return this.started ? 'truncated' : 'empty';
  }

  private finish(): void {
    this.state = State.Done;
    this.events.onComplete();
  }

  /** Returns the offset in `data` after the head, or an error message. */
  private readHead(data: Buffer, offset: number, end: number): number | string {
    if (this.head === undefined) {
      const after = this.scanHead(data, offset, end);
      if (typeof after === 'string') return after;
      if (after === INCOMPLETE) {
        if (end - offset > MAX_HEAD) return 'response head too large';
        this.head = Buffer.from(data.subarray(offset, end));
        return end;
      }
      return this.headDone(after);
    }
    // The head continues from an earlier read (rare: heads are small): scan it joined.
    const joined = Buffer.concat([this.head, data.subarray(offset, end)]);
    const after = this.scanHead(joined, 0, joined.length);
    if (typeof after === 'string') return after;
    if (after === INCOMPLETE) {
      if (joined.length > MAX_HEAD) return 'response head too large';
      this.head = joined;
      return end;
    }
    const consumed = offset + (after - this.head.length);
    this.head = undefined;
    return this.headDone(consumed);
  }

  /**
   * Reads a head in place, byte by byte, in one pass: the status line, then each header line,
   * looking only at the three headers that matter. Returns the offset after the blank line,
   * INCOMPLETE when the blank line has not arrived yet, or an error message.
   */
  private scanHead(buffer: Buffer, base: number, end: number): number | string {
    const statusEnd = lineFeed(buffer, base, end);
    if (statusEnd === -1) {
      // Not even a status line yet; say early when what came cannot be one.
      if (end - base >= 5 && (buffer[base] !== 0x48 || buffer[base + 4] !== 0x2f)) return `not an HTTP response: "${buffer.toString('latin1', base, Math.min(end, base + 40))}"`;
      return INCOMPLETE;
    }
    if (statusEnd - base < 12 || buffer[base] !== 0x48 || buffer[base + 4] !== 0x2f || buffer[base + 5] !== 0x31 || buffer[base + 6] !== 0x2e) {
      return `not an HTTP response: "${buffer.toString('latin1', base, Math.min(statusEnd, base + 40))}"`;
    }
    const status = (buffer[base + 9]! - 48) * 100 + (buffer[base + 10]! - 48) * 10 + (buffer[base + 11]! - 48);
    if (!(status >= 100 && status <= 999)) return `bad status line "${buffer.toString('latin1', base, Math.min(statusEnd, base + 40))}"`;
    let keepAlive = buffer[base + 7] === 0x31; // HTTP/1.1 keeps alive by default, 1.0 does not
    let length = -1;
    let chunked = false;
    let line = statusEnd + 1;
    for (;;) {
      if (line >= end) return INCOMPLETE;
      const first = buffer[line]!;
      if (first === LF) {
        line += 1;
        break;
      }
      if (first === CR) {
        if (line + 1 >= end) return INCOMPLETE;
        if (buffer[line + 1] === LF) {
          line += 2;
          break;
        }
      }
      const lf = lineFeed(buffer, line, end);
      if (lf === -1) return INCOMPLETE;
      const lineEnd = buffer[lf - 1] === CR ? lf - 1 : lf;
      const lower = first | 0x20;
      if (lower === 0x63 /* c */) {
        if (matches(buffer, line, lineEnd, CONTENT_LENGTH)) {
          length = 0;
          for (let i = line + CONTENT_LENGTH.length + 1; i < lineEnd; i++) {
            const c = buffer[i]!;
            if (c >= 48 && c <= 57) length = length * 10 + (c - 48);
            else if (c !== 32 && c !== 9) {
              length = NaN;
              break;
            }
          }
        } else if (matches(buffer, line, lineEnd, CONNECTION)) {
          const value = buffer.toString('latin1', line + CONNECTION.length + 1, lineEnd).toLowerCase();
          if (value.includes('close')) keepAlive = false;
          else if (value.includes('keep-alive')) keepAlive = true;
        }
      } else if (lower === 0x74 /* t */ && matches(buffer, line, lineEnd, TRANSFER_ENCODING)) {
        chunked = buffer.toString('latin1', line + TRANSFER_ENCODING.length + 1, lineEnd).trim().toLowerCase().endsWith('chunked');
      }
      line = lf + 1;
    }
    this.status = status;
    this.length = length;
    this.chunked = chunked;
    this.headKeepAlive = keepAlive;
    return line;
  }

  /** Acts on the head just read; `after` is the offset after it. */
  private headDone(after: number): number | string {
    const status = this.status;
    if (status < 200) {
      // 100 Continue and friends: the real response follows.
      return after;
    }
    this.keepAlive = this.headKeepAlive;
    this.events.onHead(status, this.keepAlive);
    if (this.bodiless || status === 204 || status === 304) this.finish();
    else if (this.chunked) this.state = State.ChunkSize;
    else if (this.length >= 0) {
      this.remaining = this.length;
      if (this.length === 0) this.finish();
      else this.state = State.Length;
    } else if (Number.isNaN(this.length)) {
      return 'bad Content-Length';
    } else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
    return after;
  }
}
