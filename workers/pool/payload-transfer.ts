/**
 * How payload bytes cross between the gateway's thread and a replica's thread. Envelopes are
 * msgpack (workers/protocol/envelopes.ts), but packing a 20 MB body into an envelope copies it
 * twice (into msgpackr's scratch buffer, then out of it to own the bytes) and leaves that scratch
 * grown to twice the largest message ever packed, in both threads, for good. So byte fields of
 * OUT_OF_BAND_BYTES or more ride beside the envelope, in the message's own structured-clone
 * payload, and the envelope carries their index in their place:
 *
 * - Request bodies go shared, not moved: the gateway keeps a body after sending it (an idempotent
 *   endpoint retries it on another replica when this one dies), and a moved ArrayBuffer would be
 *   empty by then. Bodies the gateway reads are SharedArrayBuffer-backed from the start
 *   (`sharedBytes`, used by gateway/http/body.ts), so neither side copies them.
 * - Results and stream chunks are moved (transfer list): the replica has no use for them after
 *   sending. Bytes a predictor returned are moved as they are when they fill their ArrayBuffer;
 *   a view into a larger buffer is copied once, because moving would take the rest of that buffer
 *   away from its owner. A predictor that returns moved bytes a second time gets a coded error
 *   (`wasMoved`) instead of an empty answer.
 *
 * Each thread counts the large bytes it carries (workers/pool/memory-reclaim.ts): they live
 * outside the JS heap, and a thread gone quiet after them collects them early.
 *
 * Small fields stay inside the envelope: below OUT_OF_BAND_BYTES, packing costs less than the
 * structured-clone bookkeeping of a separate buffer.
 */
import type { MessagePort } from 'node:worker_threads';
import { MAILBOX_BYTES } from './mailbox.js';
import { noteLargePayload } from './memory-reclaim.js';
import { pack, packOwned, postPacked, unpack, type ControlMessage, type ReplyFrame, type RequestBatch, type RequestEnvelope } from '../protocol/envelopes.js';

/** Byte fields this long or longer travel beside the envelope instead of inside it. */
export const OUT_OF_BAND_BYTES = 64 * 1024;

/** A message on a replica's port: an envelope alone, or an envelope and the byte fields taken out of it. */
export type ThreadMessage = Uint8Array | { packed: Uint8Array; bytes: Uint8Array[] };

/** ArrayBuffers this thread has moved to another thread: empty here now, never to be sent again. */
const moved = new WeakSet<ArrayBufferLike>();

/** Whether these bytes were moved to the other thread already (their ArrayBuffer is detached here). */
export function wasMoved(bytes: Uint8Array): boolean {
  return moved.has(bytes.buffer);
}

/** A zeroed byte array that threads share instead of copying (a body the gateway reads in large). */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

const isShared = (bytes: Uint8Array): boolean => typeof SharedArrayBuffer !== 'undefined' && bytes.buffer instanceof SharedArrayBuffer;

/** Collects the large byte fields of one message, and what its postMessage must transfer. */
class OutOfBand {
  readonly bytes: Uint8Array[] = [];
  readonly transfer = new Set<ArrayBuffer>();

  /** The index `bytes` will have on the other side; `move`: transfer rather than share. */
  take(bytes: Uint8Array, move: boolean): number {
    noteLargePayload(bytes.byteLength);
    let carried = bytes;
    if (!isShared(bytes)) {
      if (!move) {
        // Bytes the sender keeps (a request body): shared, so a retry still has them.
        carried = sharedBytes(bytes.byteLength);
        carried.set(bytes);
      } else {
        const buffer = bytes.buffer as ArrayBuffer;
        const whole = bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength;
        carried = whole ? bytes : bytes.slice();
        this.transfer.add(carried.buffer as ArrayBuffer);
      }
    }
    this.bytes.push(carried);
    return this.bytes.length - 1;
  }

  post(port: MessagePort, value: unknown): void {
    if (this.bytes.length === 0) {
      postPacked(port, value);
      return;
    }
    const packed = packOwned(value);
    const transfer: ArrayBuffer[] = [packed.buffer, ...this.transfer];
    const message: ThreadMessage = { packed, bytes: this.bytes };
    port.postMessage(message, transfer);
    for (const buffer of this.transfer) moved.add(buffer);
  }
}

const large = (bytes: Uint8Array | undefined): bytes is Uint8Array => bytes !== undefined && bytes.byteLength >= OUT_OF_BAND_BYTES;

/** Sends a batch of requests to a replica thread; large bodies are shared with it, not copied. */
export function postRequests(port: MessagePort, reqs: RequestEnvelope[]): void {
  const oob = new OutOfBand();
  const sent = reqs.map((env) => (large(env.body) ? ({ ...env, body: oob.take(env.body, false) } as unknown as RequestEnvelope) : env));
  oob.post(port, { reqs: sent } satisfies RequestBatch);
}

/** Sends a batch of frames to the gateway's thread; large results and chunks are moved, not copied. */
export function postFrames(port: MessagePort, frames: ReplyFrame[]): void {
  const oob = new OutOfBand();
  const sent = frames.map((frame) => {
    if (frame.t === 'result' && large(frame.body)) return { ...frame, body: oob.take(frame.body, true) } as unknown as ReplyFrame;
    if (frame.t === 'chunk' && large(frame.data)) return { ...frame, data: oob.take(frame.data, true) } as unknown as ReplyFrame;
    return frame;
  });
  oob.post(port, { frames: sent });
}

/** Bytes that alone fill a mailbox: a message carrying them goes on the port, without being packed for the box first. */
const overMailbox = (bytes: Uint8Array | undefined): boolean => bytes !== undefined && bytes.byteLength >= MAILBOX_BYTES;

/**
 * A batch of requests packed whole, for a mailbox (mailbox.ts), or undefined when a body cannot
 * fit one. The bytes are the packer's scratch: copy them at once.
 */
export function packRequestsInline(reqs: RequestEnvelope[]): Uint8Array | undefined {
  for (const env of reqs) if (overMailbox(env.body)) return undefined;
  return pack({ reqs } satisfies RequestBatch);
}

/** A batch of frames packed whole, for a mailbox, or undefined when a result or chunk cannot fit one. */
export function packFramesInline(frames: ReplyFrame[]): Uint8Array | undefined {
  for (const frame of frames) {
    if ((frame.t === 'result' && overMailbox(frame.body)) || (frame.t === 'chunk' && overMailbox(frame.data))) return undefined;
  }
  return pack({ frames });
}

/** The bytes an envelope field names by index, for a message that carried them beside it. */
function restore(bytes: readonly Uint8Array[], index: unknown): Uint8Array {
  const found = typeof index === 'number' ? bytes[index] : undefined;
  if (!found) throw new Error(`a thread message names out-of-band bytes #${String(index)} that it does not carry`);
  noteLargePayload(found.byteLength);
  return found;
}

/** What a replica thread reads from its port: a request batch (bodies back in place) or a control message. */
export function readRequests(message: ThreadMessage): RequestBatch | ControlMessage {
  if (message instanceof Uint8Array) return unpack<RequestBatch | ControlMessage>(message);
  const batch = unpack<RequestBatch>(message.packed);
  for (const env of batch.reqs) {
    if (typeof env.body === 'number') env.body = restore(message.bytes, env.body);
  }
  return batch;
}

/** What the gateway reads from a replica's port: its frames, with results and chunks back in place. */
export function readFrames(message: ThreadMessage): ReplyFrame[] {
  if (message instanceof Uint8Array) return unpack<{ frames: ReplyFrame[] }>(message).frames;
  const { frames } = unpack<{ frames: ReplyFrame[] }>(message.packed);
  for (const frame of frames) {
    if (frame.t === 'result' && typeof frame.body === 'number') frame.body = restore(message.bytes, frame.body);
    else if (frame.t === 'chunk' && typeof frame.data === 'number') frame.data = restore(message.bytes, frame.data);
  }
  return frames;
}
