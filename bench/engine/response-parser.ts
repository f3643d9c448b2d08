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
  /** A body piece is complete; `data` is only a view, valid during the call. */
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

export class ResponseParser {
  private state = State.Done;
  private head: Buffer | undefined;
  private remaining = 0;
  private line = '';
  private chunkParts: Buffer[] = [];
  private keepAlive = true;
  /** Set when the request was HEAD: the response has no body whatever it says. */
  private bodiless = false;

  constructor(private readonly events: ResponseEvents) {}

  /** Expect a new response (call before writing each request). */
  begin(bodiless = false): void {
    this.state = State.Head;
    this.head = undefined;
    this.bodiless = bodiless;
    this.chunkParts = [];
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

  /**
   * Feeds bytes. Returns an error message for bytes that are not HTTP, undefined otherwise.
   * Bytes past the end of the response (there should be none without pipelining) are ignored.
   */
  execute(data: Buffer): string | undefined {
    let offset = 0;
    while (offset < data.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Head: {
          const taken = this.readHead(data, offset);
          if (typeof taken === 'string') return taken;
          offset = taken;
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, data.length - offset);
          this.remaining -= n;
          this.events.onChunk(data.subarray(offset, offset + n));
          offset += n;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.UntilClose:
          this.events.onChunk(data.subarray(offset));
          offset = data.length;
          break;
        case State.ChunkSize:
        case State.Trailer: {
          const lf = data.indexOf(LF, offset);
          const end = lf === -1 ? data.length : lf;
          this.line += data.toString('latin1', offset, end);
          offset = lf === -1 ? data.length : lf + 1;
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
          const n = Math.min(this.remaining, data.length - offset);
          const piece = data.subarray(offset, offset + n);
          this.remaining -= n;
          offset += n;
          if (this.remaining === 0) {
            if (this.chunkParts.length === 0) this.events.onChunk(piece);
            else {
              this.chunkParts.push(Buffer.from(piece));
              this.events.onChunk(Buffer.concat(this.chunkParts));
              this.chunkParts = [];
            }
            this.remaining = 2;
            this.state = State.ChunkDataEnd;
          } else {
            this.chunkParts.push(Buffer.from(piece));
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

  /** Returns the offset after the head, or an error message. */
  private readHead(data: Buffer, offset: number): number | string {
    let buffer: Buffer;
    let base: number;
    if (this.head === undefined) {
      buffer = data;
      base = offset;
    } else {
      buffer = Buffer.concat([this.head, data.subarray(offset)]);
      base = 0;
    }
    const end = buffer.indexOf('\r\n\r\n', base, 'latin1');
    if (end === -1) {
      if (buffer.length - base > MAX_HEAD) return 'response head too large';
      this.head = Buffer.from(buffer.subarray(base));
      return data.length;
    }
    const consumedOfData = this.head === undefined ? end + 4 : offset + (end + 4 - this.head.length);
    this.head = undefined;
    const text = buffer.toString('latin1', base, end);
    if (!text.startsWith('HTTP/1.')) return `not an HTTP response: "${text.slice(0, 40)}"`;
    const status = Number(text.slice(9, 12));
    if (!Number.isInteger(status) || status < 100) return `bad status line "${text.slice(0, 40)}"`;
    let keepAlive = text.charCodeAt(7) === 49; // HTTP/1.1 keeps alive by default, 1.0 does not
    let length = -1;
    let chunked = false;
    let lineStart = text.indexOf('\r\n');
    while (lineStart !== -1) {
      const next = text.indexOf('\r\n', lineStart + 2);
      const line = text.slice(lineStart + 2, next === -1 ? text.length : next);
      lineStart = next;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon);
      if (name.length !== 10 && name.length !== 14 && name.length !== 17) continue;
      const lower = name.toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (lower === 'content-length') length = Number(value);
      else if (lower === 'transfer-encoding') chunked = value.endsWith('chunked');
      else if (lower === 'connection') {
        if (value.includes('close')) keepAlive = false;
        else if (value.includes('keep-alive')) keepAlive = true;
      }
    }
    if (status < 200) {
      // 100 Continue and friends: the real response follows.
      return consumedOfData;
    }
    this.keepAlive = keepAlive;
    this.events.onHead(status, keepAlive);
    if (this.bodiless || status === 204 || status === 304) this.finish();
    else if (chunked) this.state = State.ChunkSize;
    else if (length >= 0) {
      if (!Number.isFinite(length)) return 'bad Content-Length';
      this.remaining = length;
      if (length === 0) this.finish();
      else this.state = State.Length;
    } else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
    return consumedOfData;
  }
}
