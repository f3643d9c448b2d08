/**
 * The WebSocket message shapes (docs/streaming.md), as pure functions: reading a client message,
 * and writing each kind of reply. Replies use the encoding their request came in: JSON requests
 * (text frames) get JSON text frames, msgpack requests (binary frames) get msgpack binary frames.
 *
 * Bytes stay bytes where the encoding allows it: msgpack carries chunks and byte results as bin,
 * and a unary JSON or msgpack answer, already encoded by the replica, is spliced in without being
 * parsed again. JSON has no bytes: a chunk that is valid UTF-8 goes as a string, any other chunk
 * (and a byte result or a file) as base64 marked `"encoding": "base64"`.
 *
 * A large answer is copied once, into its frame: a byte answer over msgpack gets a hand-written
 * bin header instead of a trip through msgpackr (whose scratch buffer would grow to the answer and
 * then be copied out), and base64 is written into the frame's bytes piece by piece instead of
 * being made one string (Node makes a string that large outside the JS heap, and uWS.js copies a
 * string's UTF-8 again when it sends it; bytes it sends where they lie).
 */
import { isUtf8 } from 'node:buffer';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { asciiChunks, forEachChunk, type ChunkRun } from '../../workers/protocol/chunk-run.js';
import { packOwned, unpack } from '../../workers/protocol/envelopes.js';

/** The id a client gives a request: a non-empty string or a number; unique among its live requests on one socket. */
export type ClientId = string | number;

export type ClientMessage =
  | { kind: 'request'; id: ClientId; input: unknown; stream: boolean; accept?: string; timeoutMs?: number; firstChunkMs?: number; idleMs?: number }
  | { kind: 'cancel'; id: ClientId }
  /** Continue stream `stream` on this socket, under `id`, after chunk `lastSeq`. */
  | { kind: 'resume'; id: ClientId; stream: string; lastSeq: number }
  /** `id` is null when the message could not be read far enough to find one. */
  | { kind: 'invalid'; id: ClientId | null; error: SwitchyardError };

const MAX_ID_LENGTH = 256;

function invalid(id: ClientId | null, message: string, code: 'SY_BAD_REQUEST' | 'SY_PAYLOAD_TOO_LARGE' = 'SY_BAD_REQUEST'): ClientMessage {
  return { kind: 'invalid', id, error: new SwitchyardError(code, message) };
}

function isClientId(value: unknown): value is ClientId {
  return (typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH) || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Reads one message. uWS neuters `message` when its callback returns, and msgpack bin values would
 * point into it, so a binary message is copied before it is decoded.
 */
export function parseClientMessage(message: ArrayBuffer, binary: boolean, limitBytes: number): ClientMessage {
  if (message.byteLength > limitBytes) return invalid(null, `the message is larger than ${limitBytes} bytes`, 'SY_PAYLOAD_TOO_LARGE');
  let parsed: unknown;
  if (binary) {
    try {
      parsed = unpack(new Uint8Array(message.slice(0)));
    } catch (err) {
      return invalid(null, `the message is not valid msgpack: ${(err as Error).message}`);
    }
  } else {
    try {
      parsed = JSON.parse(Buffer.from(message).toString('utf8'));
    } catch (err) {
      return invalid(null, `the message is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return invalid(null, 'a message must be an object: {"id": ..., "input": ...}');
  }
  const fields = parsed as Record<string, unknown>;
  if (!isClientId(fields.id)) return invalid(null, `"id" must be a non-empty string (at most ${MAX_ID_LENGTH} characters) or a number`);
  const id = fields.id;
  if (fields.cancel !== undefined) {
    if (fields.cancel !== true) return invalid(id, '"cancel" must be true');
    return { kind: 'cancel', id };
  }
  if (fields.resume !== undefined) {
    if (typeof fields.resume !== 'string' || fields.resume.length === 0 || fields.resume.length > MAX_ID_LENGTH) return invalid(id, '"resume" must be the stream id from the stream\'s first chunk');
    const lastSeq = fields.last_seq ?? 0;
    if (typeof lastSeq !== 'number' || !Number.isSafeInteger(lastSeq) || lastSeq < 0) return invalid(id, '"last_seq" must be the seq of the last chunk received (0 or more)');
    return { kind: 'resume', id, stream: fields.resume, lastSeq };
  }
  if (fields.stream !== undefined && typeof fields.stream !== 'boolean') return invalid(id, '"stream" must be true or false');
  if (fields.accept !== undefined && typeof fields.accept !== 'string') return invalid(id, '"accept" must be a media type such as "image/png"');
  const positiveMs = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v > 0);
  const timeout = fields.timeout_ms;
  if (!positiveMs(timeout)) return invalid(id, '"timeout_ms" must be a positive number of milliseconds');
  // A stream's own limits, as X-Stream-First-Chunk-Ms and X-Stream-Idle-Ms over HTTP.
  const firstChunk = fields.first_chunk_timeout_ms;
  if (!positiveMs(firstChunk)) return invalid(id, '"first_chunk_timeout_ms" must be a positive number of milliseconds');
  const idle = fields.idle_timeout_ms;
  if (!positiveMs(idle)) return invalid(id, '"idle_timeout_ms" must be a positive number of milliseconds');
  return {
    kind: 'request',
    id,
    input: fields.input === undefined ? {} : fields.input,
    stream: fields.stream === true,
    ...(fields.accept === undefined ? {} : { accept: (fields.accept as string).trim().toLowerCase() }),
    ...(timeout === undefined ? {} : { timeoutMs: timeout as number }),
    ...(firstChunk === undefined ? {} : { firstChunkMs: firstChunk as number }),
    ...(idle === undefined ? {} : { idleMs: idle as number }),
  };
}

/** One message to send: the bytes (or text) and whether it goes as a binary frame. */
export interface ReplyFrame {
  data: Uint8Array | string;
  binary: boolean;
}

/** Writes the replies of one request, tagged with its id. */
export interface ReplyEncoder {
  /** Chunk `seq` of a stream; `stream` (the stream's id, for a resume) rides on the first chunk a socket gets. */
  chunk(data: Uint8Array, seq: number, stream?: string): ReplyFrame;
  /** Every chunk of a run, one message each, in order; `stream` rides on the first. */
  chunks(run: ChunkRun, stream: string | undefined, out: (frame: ReplyFrame) => void): void;
  /** A unary answer as the replica encoded it (JSON, msgpack, or raw bytes as application/octet-stream). */
  result(body: Uint8Array, contentType: string): ReplyFrame;
  /** A file's bytes, with its media type. */
  file(bytes: Uint8Array, contentType: string): ReplyFrame;
  done(): ReplyFrame;
  error(err: SwitchyardError): ReplyFrame;
}

function errorFields(err: SwitchyardError): { code: string; message: string; retry_after_s?: number } {
  return { code: err.code, message: err.message, ...(err.retryAfterS === undefined ? {} : { retry_after_s: err.retryAfterS }) };
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Input bytes base64-encoded per piece: a multiple of 3, so the pieces join with no padding between them. */
const BASE64_PIECE = 48 * 1024;

/** `prefix`, the base64 of `bytes`, `suffix`, as one buffer, with no string of the whole. */
export function base64Frame(prefix: string, bytes: Uint8Array, suffix: string): Buffer {
  const source = asBuffer(bytes);
  const encodedLength = 4 * Math.ceil(source.byteLength / 3);
  const frame = Buffer.allocUnsafe(Buffer.byteLength(prefix) + encodedLength + Buffer.byteLength(suffix));
  // The id in the prefix may be any text; base64 is ASCII.
  let at = frame.write(prefix, 0, 'utf8');
  for (let i = 0; i < source.byteLength; i += BASE64_PIECE) {
    at += frame.write(source.subarray(i, i + BASE64_PIECE).toString('base64'), at, 'latin1');
  }
  frame.write(suffix, at, 'utf8');
  return frame;
}

class JsonReplies implements ReplyEncoder {
  /** `{"id":<id>,` once per request. */
  private readonly head: string;
  private readonly headBytes: Buffer;

  constructor(id: ClientId | null) {
    this.head = `{"id":${JSON.stringify(id)},`;
    this.headBytes = Buffer.from(this.head + '"result":');
  }

  chunk(data: Uint8Array, seq: number, stream?: string): ReplyFrame {
    const bytes = asBuffer(data);
    if (isUtf8(bytes)) return this.textChunk(bytes.toString('utf8'), seq, stream);
    return { data: base64Frame(`${this.chunkHead(seq, stream)}"`, bytes, '","encoding":"base64"}'), binary: false };
  }

  chunks(run: ChunkRun, stream: string | undefined, out: (frame: ReplyFrame) => void): void {
    const ascii = asciiChunks(run);
    if (ascii === undefined) {
      forEachChunk(run, (data, seq) => {
        out(this.chunk(data, seq, stream));
        stream = undefined;
      });
      return;
    }
    for (let i = 0; i < ascii.length; i++) {
      out(this.textChunk(ascii[i]!, run.firstSeq + i, stream));
      stream = undefined;
    }
  }

  private chunkHead(seq: number, stream: string | undefined): string {
    return `${this.head}"seq":${seq},${stream === undefined ? '' : `"stream":${JSON.stringify(stream)},`}"chunk":`;
  }

  private textChunk(text: string, seq: number, stream: string | undefined): ReplyFrame {
    return { data: `${this.chunkHead(seq, stream)}${JSON.stringify(text)}}`, binary: false };
  }

  result(body: Uint8Array, contentType: string): ReplyFrame {
    if (contentType === 'application/json') return { data: Buffer.concat([this.headBytes, body, CLOSE_BRACE]), binary: false };
    return this.file(body, contentType);
  }

  file(bytes: Uint8Array, contentType: string): ReplyFrame {
    return { data: base64Frame(`${this.head}"result":"`, bytes, `","encoding":"base64","content_type":${JSON.stringify(contentType)}}`), binary: false };
  }

  done(): ReplyFrame {
    return { data: `${this.head}"done":true}`, binary: false };
  }

  error(err: SwitchyardError): ReplyFrame {
    return { data: `${this.head}"error":${JSON.stringify(errorFields(err))}}`, binary: false };
  }
}

const CLOSE_BRACE = Buffer.from('}');

class MsgpackReplies implements ReplyEncoder {
  /** The map `{id, result: nil}` without its final nil byte: an encoded result is appended in its place. */
  private resultHead: Uint8Array | undefined;

  constructor(private readonly id: ClientId | null) {}

  chunk(data: Uint8Array, seq: number, stream?: string): ReplyFrame {
    return { data: packOwned(stream === undefined ? { id: this.id, seq, chunk: data } : { id: this.id, seq, stream, chunk: data }), binary: true };
  }

  chunks(run: ChunkRun, stream: string | undefined, out: (frame: ReplyFrame) => void): void {
    forEachChunk(run, (data, seq) => {
      out(this.chunk(data, seq, stream));
      stream = undefined;
    });
  }

  result(body: Uint8Array, contentType: string): ReplyFrame {
    if (contentType !== 'application/msgpack') return this.file(body, contentType);
    this.resultHead ??= packOwned({ id: this.id, result: null }).subarray(0, -1);
    return { data: Buffer.concat([this.resultHead, body]), binary: true };
  }

  file(bytes: Uint8Array, contentType: string): ReplyFrame {
    // `result` last, as a bin written here: the map's head comes from msgpackr, the bytes are copied once.
    const head = packOwned({ id: this.id, content_type: contentType, result: null }).subarray(0, -1);
    return { data: Buffer.concat([head, binHeader(bytes.byteLength), bytes]), binary: true };
  }

  done(): ReplyFrame {
    return { data: packOwned({ id: this.id, done: true }), binary: true };
  }

  error(err: SwitchyardError): ReplyFrame {
    return { data: packOwned({ id: this.id, error: errorFields(err) }), binary: true };
  }
}

/** A msgpack bin header for `length` bytes (bin 8, 16 or 32). */
function binHeader(length: number): Uint8Array {
  if (length < 0x100) return Uint8Array.of(0xc4, length);
  if (length < 0x10000) return Uint8Array.of(0xc5, length >>> 8, length & 0xff);
  const header = new Uint8Array(5);
  header[0] = 0xc6;
  new DataView(header.buffer).setUint32(1, length);
  return header;
}


export function replyEncoder(id: ClientId | null, binary: boolean): ReplyEncoder {
  return binary ? new MsgpackReplies(id) : new JsonReplies(id);
}
