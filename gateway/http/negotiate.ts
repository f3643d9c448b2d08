/**
 * Content negotiation for the inference route: the body type from Content-Type, and from Accept
 * (with wildcards and q-values) either a file media type the endpoint produces, SSE or NDJSON for
 * streams, msgpack, or JSON. The common Accept values skip the parsing.
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

interface Offer {
  type: string;
  answer: Negotiated;
  /** A stream framing is chosen only by its own name, never through a wildcard. */
  exactOnly: boolean;
}

interface MediaRange {
  type: string;
  q: number;
  /** 2 for an exact type, 1 for `type/` and a wildcard, 0 for the full wildcard. */
  specificity: number;
  index: number;
}

const MSGPACK_TYPES = ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack'];

/** Accept's media ranges; a q that does not parse counts as 1, as lenient clients expect. */
function parseAccept(accept: string): MediaRange[] {
  return accept.split(',').map((part, index) => {
    const [rawType, ...params] = part.split(';');
    const type = rawType!.trim().toLowerCase();
    let q = 1;
    for (const param of params) {
      const [name, value] = param.split('=').map((x) => x.trim().toLowerCase());
      if (name === 'q') {
        const n = Number(value);
        if (Number.isFinite(n) && n >= 0 && n <= 1) q = n;
      }
    }
    const specificity = type === '*/*' ? 0 : type.endsWith('/*') ? 1 : 2;
    return { type, q, specificity, index };
  });
}

/** The range that governs `type`: the most specific one that matches it. */
function governing(ranges: readonly MediaRange[], type: string, exactOnly: boolean): MediaRange | undefined {
  let best: MediaRange | undefined;
  const major = type.slice(0, type.indexOf('/') + 1);
  for (const r of ranges) {
    const matches = r.type === type || (!exactOnly && (r.type === '*/*' || (r.specificity === 1 && r.type.slice(0, -1) === major)));
    if (matches && (!best || r.specificity > best.specificity)) best = r;
  }
  return best;
}

/**
 * The answer for `Accept` (RFC 9110 §12.5.1): every offer gets the q of the most specific range
 * that matches it; the highest q wins, then the more specific match, then the range the client
 * listed first, then our order (the body's own encoding first). q=0 refuses a type.
 */
export function negotiate(accept: string, produces: readonly string[], bodyType: 'json' | 'msgpack'): Negotiated {
  // The common cases, without parsing.
  if (accept === '' || accept === '*/*') return bodyType === 'msgpack' ? MSGPACK_ANSWER : JSON_ANSWER;
  if (accept === 'application/json') return JSON_ANSWER;
  const encodings: Offer[] = [
    { type: 'application/json', answer: JSON_ANSWER, exactOnly: false },
    ...MSGPACK_TYPES.map((type, i) => ({ type, answer: MSGPACK_ANSWER, exactOnly: i > 0 })),
  ];
  const offers: Offer[] = [
    ...(bodyType === 'msgpack' ? [...encodings.slice(1), encodings[0]!] : encodings),
    ...produces.map((type) => ({ type, answer: { encoding: 'json', fileType: type, sse: false, ndjson: false } as Negotiated, exactOnly: false })),
    { type: 'text/event-stream', answer: SSE_ANSWER, exactOnly: true },
    { type: 'application/x-ndjson', answer: NDJSON_ANSWER, exactOnly: true },
    // Bytes a predictor returns go out as application/octet-stream whatever was negotiated.
    { type: 'application/octet-stream', answer: JSON_ANSWER, exactOnly: true },
  ];
  const ranges = parseAccept(accept);
  let chosen: { offer: Offer; range: MediaRange } | undefined;
  for (const offer of offers) {
    const range = governing(ranges, offer.type, offer.exactOnly);
    if (!range || range.q === 0) continue;
    const better =
      !chosen ||
      range.q > chosen.range.q ||
      (range.q === chosen.range.q && (range.specificity > chosen.range.specificity || (range.specificity === chosen.range.specificity && range.index < chosen.range.index)));
    if (better) chosen = { offer, range };
  }
  if (chosen) return chosen.offer.answer;
  const wanted = ranges.map((r) => r.type).join(', ');
  const offer = ['application/json', 'application/msgpack', ...produces].join(', ');
  throw new SwitchyardError('SY_NOT_ACCEPTABLE', `this endpoint cannot produce ${wanted}; it offers ${offer}`);
}
