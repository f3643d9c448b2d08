/**
 * How a stream's chunks are framed on an HTTP response, as pure functions. Three framings:
 *
 * - `raw` (the default): each chunk is one HTTP chunk, its bytes as they are. Nothing is added, so
 *   existing clients see exactly what the predictor yielded; the stream's id is in the
 *   `X-Switchyard-Stream` header.
 * - `sse` (`Accept: text/event-stream`): one event per chunk, `id: <stream>:<seq>`, so a standard
 *   `EventSource` reconnects with `Last-Event-ID` naming both the stream and the last chunk it got.
 * - `ndjson` (`Accept: application/x-ndjson`): one JSON line per chunk, `{"seq":n,"chunk":...}`
 *   (base64 with `"encoding":"base64"` when the chunk is not UTF-8), then `{"done":true}` or
 *   `{"error":{...}}`: a chunked framing that carries sequence numbers for any HTTP client.
 */
import { isUtf8 } from 'node:buffer';
import type { HttpResponse } from '../../native/uws.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import { errorBody } from './respond.js';

export type StreamFraming = 'raw' | 'sse' | 'ndjson' | CustomFraming;

/** A framing of another protocol's stream (the OpenAI routes): each chunk, the end and a failure, in band. */
export interface CustomFraming {
  readonly contentType: string;
  chunk(data: Uint8Array, seq: number): Uint8Array;
  /** `returned`: what predictStream returned. */
  end(returned: unknown): Uint8Array | undefined;
  error(err: SwitchyardError): string;
  /** A failure before the stream started: a whole error answer in the protocol's shape. */
  writeError(res: HttpResponse, err: SwitchyardError): void;
}

export function contentTypeOf(framing: StreamFraming): string {
  return typeof framing === 'object' ? framing.contentType : CONTENT_TYPES[framing];
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** The SSE event id of chunk `seq`: what `Last-Event-ID` carries back on a reconnect. */
export function sseEventId(streamId: string, seq: number): string {
  return `${streamId}:${seq}`;
}

/** Reads a `Last-Event-ID` (`<stream>:<seq>`); undefined when it is not one of ours. */
export function parseSseEventId(value: string): { streamId: string; seq: number } | undefined {
  const at = value.lastIndexOf(':');
  if (at <= 0) return undefined;
  const seq = Number(value.slice(at + 1));
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { streamId: value.slice(0, at), seq };
}

export const CONTENT_TYPES: Readonly<Record<Exclude<StreamFraming, CustomFraming>, string>> = {
  raw: 'text/plain; charset=utf-8',
  sse: 'text/event-stream',
  ndjson: 'application/x-ndjson',
};

/** One chunk, framed. `raw` returns the bytes themselves. */
export function frameChunk(framing: StreamFraming, streamId: string, seq: number, data: Uint8Array): Uint8Array {
  if (typeof framing === 'object') return framing.chunk(data, seq);
  if (framing === 'raw') return data;
  const bytes = asBuffer(data);
  if (framing === 'sse') {
    // A chunk's line breaks become several data lines: EventSource joins them back with "\n".
    const text = bytes.toString('utf8');
    return Buffer.from(`id: ${sseEventId(streamId, seq)}\ndata: ${text.replace(/\r\n|\r|\n/g, '\ndata: ')}\n\n`);
  }
  if (isUtf8(bytes)) return Buffer.from(`{"seq":${seq},"chunk":${JSON.stringify(bytes.toString('utf8'))}}\n`);
  return Buffer.from(`{"seq":${seq},"chunk":"${bytes.toString('base64')}","encoding":"base64"}\n`);
}

/**
 * uWS frames each `write` as CRLF, size, CRLF, bytes: a chunk's closing CRLF leaves only with the
 * next write, and clients that read chunk by chunk (Python's urllib3, so `requests`) hold the
 * chunk until then. Where the framing has a line that every reader skips, one follows the chunks
 * of each write: the real chunks are then complete on the wire, and only the skipped line waits.
 * SSE has comments; raw bytes and NDJSON have no such line (see the README, "HTTP/1.1").
 */
export function frameFlush(framing: StreamFraming): Uint8Array | undefined {
  if (typeof framing === 'object') return framing.contentType === 'text/event-stream' ? SSE_FLUSH : undefined;
  return framing === 'sse' ? SSE_FLUSH : undefined;
}
const SSE_FLUSH = Buffer.from(':\n');

const SSE_END = Buffer.from('event: end\ndata: {}\n\n');
const NDJSON_END = Buffer.from('{"done":true}\n');

/** What ends a stream that finished; `raw` has nothing (the terminating HTTP chunk says it). */
export function frameEnd(framing: StreamFraming, returned?: unknown): Uint8Array | undefined {
  if (typeof framing === 'object') return framing.end(returned);
  return framing === 'sse' ? SSE_END : framing === 'ndjson' ? NDJSON_END : undefined;
}

/**
 * What ends a stream that failed. For `raw` the caller cuts the connection after it, so the body
 * can never pass for complete; the other framings say it in band and end normally.
 */
export function frameError(framing: StreamFraming, err: SwitchyardError): string {
  if (typeof framing === 'object') return framing.error(err);
  if (framing === 'sse') return `event: error\ndata: ${errorBody(err)}\n\n`;
  if (framing === 'ndjson') return `${errorBody(err)}\n`;
  return `\n${errorBody(err)}\n`;
}
