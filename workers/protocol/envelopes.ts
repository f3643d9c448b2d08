/**
 * The messages between the gateway and a replica, whether the replica is a worker thread here or
 * lives in a node agent across NATS. Every message is msgpack (one Packr, plain maps, no records,
 * so any peer can read it); bytes stay bytes.
 *
 * Gateway → replica: a batch of requests (all that arrived for it in one event-loop turn), and
 * control messages (cancel, stream credit). Replica → gateway: frames, batched per turn too, the
 * chunks a stream produced in one turn joined into one frame.
 */
import type { MessagePort } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import type { WireError } from './errors.js';

export const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

export function pack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * msgpackr packs into a shared scratch buffer that the next pack overwrites: bytes to keep (queue,
 * or transfer to another thread) need a copy of their own.
 */
export function packOwned(value: unknown): Uint8Array<ArrayBuffer> {
  return ownPacked(pack(value));
}

/**
 * msgpackr grows its scratch buffer to fit the largest message and keeps it for good (up to 1 GB):
 * once one 100 MB answer was packed, every thread that packed it would hold 125 MB more forever.
 * Past this size the scratch is let go (the next pack starts a small one).
 */
const SCRATCH_KEEP_BYTES = 1024 * 1024;

/** A copy of bytes `pack` just returned, which the next pack may overwrite; lets go of a grown scratch buffer. */
export function ownPacked(packed: Uint8Array): Uint8Array<ArrayBuffer> {
  const owned = Uint8Array.prototype.slice.call(packed) as Uint8Array<ArrayBuffer>;
  // A Buffer, not a plain Uint8Array: msgpackr writes mid-sized strings with Buffer#utf8Write.
  if (packed.buffer.byteLength > SCRATCH_KEEP_BYTES) packr.useBuffer(Buffer.allocUnsafe(8192));
  return owned;
}

/** Packs `value` and transfers the bytes to the thread behind `port` (one copy, no second one on the way). */
export function postPacked(port: MessagePort, value: unknown): void {
  const owned = packOwned(value);
  port.postMessage(owned, [owned.buffer]);
}

export function unpack<T>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

/** How the worker should encode a unary answer. */
export type ResponseEncoding = 'json' | 'msgpack';

export interface RequestEnvelope {
  /** Request id, unique per gateway (a number keeps the hot path cheap). */
  id: number;
  /** The raw body as the client sent it (the worker parses it, off the gateway's event loop). */
  body?: Uint8Array;
  /** 'json' | 'msgpack': how to parse `body`. */
  bodyType?: 'json' | 'msgpack';
  /** An input already decoded (WebSocket messages are parsed on arrival to read their id). */
  input?: unknown;
  /** True when the transport already knows this is a stream (WebSocket); otherwise the body's `"stream"` decides. */
  stream?: boolean;
  /** Encoding of a unary answer. */
  encoding: ResponseEncoding;
  /** A non-JSON media type the client accepts and the endpoint produces: the predictor returns a file path. */
  fileType?: string | undefined;
  /** Epoch ms. */
  deadline: number;
  headers?: Record<string, string>;
  /** `metadata`: not a request to the model but for the predictor's `metadata()`, answered as a JSON result. */
  op?: 'metadata' | undefined;
  /** Initial stream credit (chunks the replica may send before waiting for more). */
  credit?: number;
  /** This stream continues on a new replica after its replica died. */
  resume?: StreamResume;
}

/**
 * Where a resumed stream picks up. The replica numbers the chunks it produces from `from + 1`
 * and sends only those after `delivered`: for a deterministic predictor `from` is 0 (it runs
 * again from the start), for a checkpointing one it is the seq of the chunk `checkpoint` came with.
 */
export interface StreamResume {
  from: number;
  checkpoint?: unknown;
  delivered: number;
}

export interface RequestBatch {
  reqs: RequestEnvelope[];
}

export type ControlMessage =
  | { t: 'cancel'; id: number }
  | { t: 'credit'; id: number; n: number }
  /** Credit for several streams at once (what the client took in one turn): `ns[i]` chunks for request `ids[i]`. */
  | { t: 'credits'; ids: number[]; ns: number[] };

/** Frames from a replica. `id` names the request. */
export type ReplyFrame =
  /** A unary answer, already encoded in the requested encoding (or raw bytes with contentType application/octet-stream). */
  | { t: 'result'; id: number; body: Uint8Array; contentType: string }
  /**
   * A file to send: `fd` is a descriptor the replica opened and checked (a regular file inside its
   * output folder; see workers/pool/output-files.ts). The receiver serves and closes it; `path` is
   * only for deleting the file afterwards.
   */
  | { t: 'file'; id: number; path: string; fd: number; size: number; contentType: string; remove: boolean }
  /** The request is a stream; chunks follow. `resumable`: the predictor's declaration, if any. */
  | { t: 'start'; id: number; resumable?: 'deterministic' | 'checkpoint' }
  /**
   * One chunk, or a run of them produced in one turn (chunk-run.ts): with `sizes`, `data` holds
   * that many chunks back to back. `cp`: the latest checkpoint the predictor yielded with a chunk
   * of the run, that of the chunk at index `cpAt` (absent: the last).
   */
  | { t: 'chunk'; id: number; data: Uint8Array; sizes?: number[]; cp?: unknown; cpAt?: number }
  /** The stream ended; `value` is what predictStream returned, when anything (e.g. OpenAI usage). */
  | { t: 'end'; id: number; value?: unknown }
  | { t: 'error'; id: number; error: WireError }
  /**
   * The replica received the cancel for request `id` (sent for every cancel, whether or not the
   * request was still running): its thread is alive. A replica that does not confirm the cancel of
   * a request past its deadline within the endpoint's `abort_grace_ms` is wedged and replaced.
   */
  | { t: 'cancelled'; id: number }
  /**
   * Something went wrong inside the replica outside any request (`id` is 0), which it survived:
   * a promise the predictor rejected with no handler. The gateway logs and counts it.
   */
  | { t: 'fault'; id: number; kind: 'unhandled_rejection'; message: string };

export interface ReplyBatch {
  frames: ReplyFrame[];
}
