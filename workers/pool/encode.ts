/**
 * Request decoding and answer encoding, done in the replica's thread so the gateway's event loop
 * never parses or stringifies a body. Tensors (WireTensor) carry a prototype `toJSON`, so JSON
 * gets numbers and msgpack gets raw bytes without walking the result.
 */
import { SwitchyardError } from '../protocol/errors.js';
import { ownPacked, pack, unpack, type ResponseEncoding } from '../protocol/envelopes.js';
import { OUT_OF_BAND_BYTES, wasMoved } from './payload-transfer.js';

export interface DecodedBody {
  input: unknown;
  stream: boolean;
}

/**
 * Deepest nesting a JSON body may have. Parsing deeper input works, but encoding an answer that
 * echoes it (JSON.stringify, msgpack) recurses and overflows the thread's stack: refused up front.
 */
export const MAX_BODY_DEPTH = 512;

const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Whether `bytes` (JSON text) nests deeper than `limit`; brackets inside strings do not count. */
export function nestsDeeperThan(bytes: Uint8Array, limit: number): boolean {
  // Nesting deeper than `limit` needs more than `limit` bytes: short bodies skip the scan.
  if (bytes.byteLength <= limit) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.byteLength; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** Whether a decoded value nests deeper than `limit` (for msgpack, whose bytes are not scanned). */
export function valueNestsDeeperThan(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return false;
  if (limit === 0) return true;
  const children = Array.isArray(value) ? value : Object.values(value);
  for (const child of children) {
    if (child !== null && typeof child === 'object' && valueNestsDeeperThan(child, limit - 1)) return true;
  }
  return false;
}

const CT_JSON = 'application/json';
const CT_MSGPACK = 'application/msgpack';
const CT_BYTES = 'application/octet-stream';

const tooDeep = (what: string) => new SwitchyardError('SY_BAD_REQUEST', `the ${what} body is nested deeper than ${MAX_BODY_DEPTH} levels`);

export function decodeBody(body: Uint8Array | undefined, bodyType: 'json' | 'msgpack' | undefined): DecodedBody {
  let parsed: unknown;
  if (!body || body.byteLength === 0) {
    parsed = {};
  } else if (bodyType === 'msgpack') {
    try {
      parsed = unpack(body);
    } catch (err) {
      if (err instanceof RangeError) throw tooDeep('msgpack');
      throw new SwitchyardError('SY_BAD_REQUEST', `body is not valid msgpack: ${(err as Error).message}`);
    }
    if (valueNestsDeeperThan(parsed, MAX_BODY_DEPTH)) throw tooDeep('msgpack');
  } else {
    if (nestsDeeperThan(body, MAX_BODY_DEPTH)) throw tooDeep('JSON');
    try {
      parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch (err) {
      throw new SwitchyardError('SY_BAD_REQUEST', `body is not valid JSON: ${(err as Error).message}`);
    }
  }
  return unwrap(parsed);
}

/** `{"inputs": X, "stream": true}` → X, as TensorOpera Deploy accepts; `"stream"` is read either way. */
export function unwrap(parsed: unknown): DecodedBody {
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const obj = parsed as Record<string, unknown>;
    const stream = obj.stream === true;
    if ('inputs' in obj) return { input: obj.inputs, stream };
    if ('stream' in obj) {
      // "stream" steers the gateway; it is not part of the model's input.
      const { stream: _flag, ...rest } = obj;
      return { input: rest, stream };
    }
    return { input: obj, stream };
  }
  return { input: parsed, stream: false };
}

/** Bytes a predictor returned or yielded, checked: the same bytes cannot be handed over twice. */
function ownBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength === 0 && wasMoved(bytes)) {
    throw new SwitchyardError(
      'SY_PREDICTOR_OUTPUT',
      'the predictor returned bytes it had already returned: large bytes move to the gateway when returned, so return a copy of bytes you keep (e.g. a cache)',
    );
  }
  return bytes;
}

/** Bytes, as a predictor may return them (Uint8Array, Buffer, ArrayBuffer), or undefined for anything else. */
export function asBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return ownBytes(value);
  if (value instanceof ArrayBuffer) return ownBytes(new Uint8Array(value));
  return undefined;
}

export function encodeResult(value: unknown, encoding: ResponseEncoding): { body: Uint8Array; contentType: string } {
  const bytes = asBytes(value);
  if (bytes) return { body: bytes, contentType: CT_BYTES };
  if (encoding === 'msgpack') {
    try {
      const packed = pack(value);
      // A large answer leaves msgpackr's scratch buffer as bytes of its own, so it can be moved.
      return { body: packed.byteLength >= OUT_OF_BAND_BYTES ? ownPacked(packed) : packed, contentType: CT_MSGPACK };
    } catch (err) {
      throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `the predictor's result cannot be encoded as msgpack: ${(err as Error).message}`);
    }
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `the predictor's result cannot be encoded as JSON: ${(err as Error).message}`);
  }
  return { body: Buffer.from(text ?? 'null'), contentType: CT_JSON };
}

export function chunkBytes(chunk: unknown): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  const bytes = asBytes(chunk);
  if (bytes) return bytes;
  throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `a stream chunk must be a string or bytes, got ${typeof chunk}`);
}
