/**
 * How a stream's chunks are framed on an HTTP response, as pure functions. A stream is written a
 * run at a time (the chunks its replica produced in one turn, chunk-run.ts), each run framed into
 * one piece for one socket write. Three framings:
 *
 * - `raw` (the default): the chunks' bytes as they are, back to back. Nothing is added, so clients
 *   see exactly what the predictor yielded; the chunks of one run share an HTTP chunk (HTTP chunk
 *   boundaries carry no meaning). The stream's id is in the `X-Switchyard-Stream` header.
 * - `sse` (`Accept: text/event-stream`): one event per chunk, `id: <stream>:<seq>`, so a standard
 *   `EventSource` reconnects with `Last-Event-ID` naming both the stream and the last chunk it got.
 * - `ndjson` (`Accept: application/x-ndjson`): one JSON line per chunk, `{"seq":n,"chunk":...}`
 *   (base64 with `"encoding":"base64"` when the chunk is not UTF-8), then `{"done":true}` or
 *   `{"error":{...}}`: a chunked framing that carries sequence numbers for any HTTP client.
 */
import { isUtf8 } from 'node:buffer';
import type { HttpResponse } from '../../native/uws.js';
import { asciiChunks, forEachChunk, type ChunkRun } from '../../workers/protocol/chunk-run.js';
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

/** A framed run: bytes, or text that uWS writes as UTF-8 (one conversion, in native code). */
export type FramedRun = Uint8Array | string;

/** One SSE event: a chunk's line breaks become several data lines, which EventSource joins back with "\n". */
function sseEvent(streamId: string, seq: number, text: string): string {
  return `id: ${sseEventId(streamId, seq)}\ndata: ${text.replace(/\r\n|\r|\n/g, '\ndata: ')}\n\n`;
}

const ndjsonText = (seq: number, text: string): string => `{"seq":${seq},"chunk":${JSON.stringify(text)}}\n`;

/** One NDJSON line: the chunk as a JSON string when it is UTF-8, else base64. */
function ndjsonLine(seq: number, data: Uint8Array): string {
  const bytes = asBuffer(data);
  if (isUtf8(bytes)) return ndjsonText(seq, bytes.toString('utf8'));
  return `{"seq":${seq},"chunk":"${bytes.toString('base64')}","encoding":"base64"}\n`;
}

/** Every chunk of a run, framed, as one piece. `raw` returns the run's bytes themselves. */
export function frameRun(framing: StreamFraming, streamId: string, run: ChunkRun): FramedRun {
  if (framing === 'raw') return run.bytes;
  if (typeof framing === 'object') {
    const parts: Uint8Array[] = [];
    forEachChunk(run, (data, seq) => parts.push(framing.chunk(data, seq)));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
  let text = '';
  const ascii = asciiChunks(run);
  if (ascii !== undefined) {
    for (let i = 0; i < ascii.length; i++) text += framing === 'sse' ? sseEvent(streamId, run.firstSeq + i, ascii[i]!) : ndjsonText(run.firstSeq + i, ascii[i]!);
  } else if (framing === 'sse') {
    forEachChunk(run, (data, seq) => (text += sseEvent(streamId, seq, asBuffer(data).toString('utf8'))));
  } else {
    forEachChunk(run, (data, seq) => (text += ndjsonLine(seq, data)));
  }
  return text;
}

/**
 * Framed runs queued for one write, as one piece: text stays text, bytes are joined (a copy, which
 * costs less than a write per piece for the small chunks that queue up).
 */
export function joinFramed(pieces: readonly FramedRun[]): FramedRun {
  if (pieces.length === 1) return pieces[0]!;
  if (pieces.every((p) => typeof p === 'string')) return (pieces as string[]).join('');
  return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
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
