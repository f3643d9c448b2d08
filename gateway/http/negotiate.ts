/**
 * Content negotiation for the inference route, kept to string checks on the hot path: the body
 * type from Content-Type, and from Accept either a file media type the endpoint produces, SSE for
 * streams, msgpack, or JSON.
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { ResponseEncoding } from '../../workers/protocol/envelopes.js';

export function bodyTypeOf(contentType: string): 'json' | 'msgpack' {
  if (contentType === '' || contentType === 'application/json') return 'json';
  const base = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (base === 'application/json' || base.endsWith('+json')) return 'json';
  if (base === 'application/msgpack' || base === 'application/x-msgpack' || base === 'application/vnd.msgpack') return 'msgpack';
  throw new SwitchyardError('SY_UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type "${base}": send application/json or application/msgpack`);
}

export interface Negotiated {
  encoding: ResponseEncoding;
  /** A media type from the endpoint's `produces` that the client asked for. */
  fileType: string | undefined;
  /** The client asked for Server-Sent Events. */
  sse: boolean;
  /** The client asked for NDJSON stream framing (`application/x-ndjson`). */
  ndjson: boolean;
}

const JSON_ANSWER: Negotiated = Object.freeze({ encoding: 'json', fileType: undefined, sse: false, ndjson: false });
const MSGPACK_ANSWER: Negotiated = Object.freeze({ encoding: 'msgpack', fileType: undefined, sse: false, ndjson: false });
const SSE_ANSWER: Negotiated = Object.freeze({ encoding: 'json', fileType: undefined, sse: true, ndjson: false });
const NDJSON_ANSWER: Negotiated = Object.freeze({ encoding: 'json', fileType: undefined, sse: false, ndjson: true });

export function negotiate(accept: string, produces: readonly string[], bodyType: 'json' | 'msgpack'): Negotiated {
  if (accept === '' || accept === '*/*') return bodyType === 'msgpack' ? MSGPACK_ANSWER : JSON_ANSWER;
  if (accept === 'application/json') return JSON_ANSWER;
  const types = accept.split(',').map((part) => part.split(';', 1)[0]!.trim().toLowerCase());
  for (const type of types) {
    if (produces.includes(type)) return { encoding: 'json', fileType: type, sse: false, ndjson: false };
    if (type === 'text/event-stream') return SSE_ANSWER;
    if (type === 'application/x-ndjson') return NDJSON_ANSWER;
    if (type === 'application/msgpack' || type === 'application/x-msgpack' || type === 'application/vnd.msgpack') return MSGPACK_ANSWER;
    if (type === 'application/json' || type === 'application/*' || type === '*/*') return JSON_ANSWER;
    if (type === 'application/octet-stream') return JSON_ANSWER;
  }
  const wanted = types.join(', ');
  const offer = ['application/json', 'application/msgpack', ...produces].join(', ');
  throw new SwitchyardError('SY_NOT_ACCEPTABLE', `this endpoint cannot produce ${wanted}; it offers ${offer}`);
}
