/**
 * Request decoding and answer encoding, done in the replica's thread so the gateway's event loop
 * never parses or stringifies a body. Tensors (WireTensor) carry a prototype `toJSON`, so JSON
 * gets numbers and msgpack gets raw bytes without walking the result.
 */
import { SwitchyardError } from '../protocol/errors.js';
import { pack, unpack, type ResponseEncoding } from '../protocol/envelopes.js';

export interface DecodedBody {
  input: unknown;
  stream: boolean;
}

const CT_JSON = 'application/json';
const CT_MSGPACK = 'application/msgpack';
const CT_BYTES = 'application/octet-stream';

export function decodeBody(body: Uint8Array | undefined, bodyType: 'json' | 'msgpack' | undefined): DecodedBody {
  let parsed: unknown;
  if (!body || body.byteLength === 0) {
    parsed = {};
  } else if (bodyType === 'msgpack') {
    try {
      parsed = unpack(body);
    } catch (err) {
      throw new SwitchyardError('SY_BAD_REQUEST', `body is not valid msgpack: ${(err as Error).message}`);
    }
  } else {
    try {
      parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch (err) {
      throw new SwitchyardError('SY_BAD_REQUEST', `body is not valid JSON: ${(err as Error).message}`);
    }
  }
  return unwrap(parsed);
}

/** `{"inputs": X, "stream": true}` → X, as the reference system accepts; `"stream"` is read either way. */
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

export function isBytes(value: unknown): value is Uint8Array | ArrayBuffer {
  return value instanceof Uint8Array || value instanceof ArrayBuffer;
}

export function encodeResult(value: unknown, encoding: ResponseEncoding): { body: Uint8Array; contentType: string } {
  if (value instanceof Uint8Array) return { body: value, contentType: CT_BYTES };
  if (value instanceof ArrayBuffer) return { body: new Uint8Array(value), contentType: CT_BYTES };
  if (encoding === 'msgpack') {
    try {
      return { body: pack(value), contentType: CT_MSGPACK };
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
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `a stream chunk must be a string or bytes, got ${typeof chunk}`);
}
