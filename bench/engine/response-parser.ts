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
const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CONNECTION = Buffer.from('connection');

/** Does the header line at `at` have this (lower-case) name? ASCII letters and '-' compare case-blind with | 0x20. */
function matches(buffer: Buffer, at: number, name: Buffer): boolean {
  if (buffer[at + name.length] !== 0x3a) return false;
  for (let i = 0; i < name.length; i++) if ((buffer[at + i]! | 0x20) !== name[i]) return false;
  return true;
}

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
    // Bytes, not text: the head is scanned in place (this runs once per response).
    if (end - base < 12 || buffer[base] !== 0x48 || buffer[base + 4] !== 0x2f || buffer[base + 5] !== 0x31 || buffer[base + 6] !== 0x2e) {
      return `not an HTTP response: "${buffer.toString('latin1', base, Math.min(end, base + 40))}"`;
    }
    const status = (buffer[base + 9]! - 48) * 100 + (buffer[base + 10]! - 48) * 10 + (buffer[base + 11]! - 48);
    if (!(status >= 100 && status <= 999)) return `bad status line "${buffer.toString('latin1', base, Math.min(end, base + 40))}"`;
    let keepAlive = buffer[base + 7] === 0x31; // HTTP/1.1 keeps alive by default, 1.0 does not
    let length = -1;
    let chunked = false;
    let line = buffer.indexOf(LF, base) + 1;
    while (line > 0 && line < end) {
      const next = buffer.indexOf(LF, line);
      const lineEnd = next === -1 || next > end ? end : buffer[next - 1] === CR ? next - 1 : next;
      if (matches(buffer, line, CONTENT_LENGTH)) {
        length = 0;
        for (let i = line + CONTENT_LENGTH.length + 1; i < lineEnd; i++) {
          const c = buffer[i]!;
          if (c >= 48 && c <= 57) length = length * 10 + (c - 48);
          else if (c !== 32 && c !== 9) {
            length = NaN;
            break;
          }
        }
      } else if (matches(buffer, line, TRANSFER_ENCODING)) {
        chunked = buffer.toString('latin1', line + TRANSFER_ENCODING.length + 1, lineEnd).trim().toLowerCase().endsWith('chunked');
      } else if (matches(buffer, line, CONNECTION)) {
        const value = buffer.toString('latin1', line + CONNECTION.length + 1, lineEnd).toLowerCase();
        if (value.includes('close')) keepAlive = false;
        else if (value.includes('keep-alive')) keepAlive = true;
      }
      line = next === -1 ? 0 : next + 1;
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
