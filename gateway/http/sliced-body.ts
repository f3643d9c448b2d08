/**
 * Sends a large unary answer without uWS copying it: `tryEnd` hands the socket what is left and
 * uWS writes what the kernel takes at once, buffering nothing of it (a try); on `onWritable` it
 * goes on from uWS's own offset. Each write is one syscall bounded by the socket's send buffer, so
 * the event loop is never held by one big copy (a 100 MB `end` stalls every other connection,
 * /healthz included, while uWS copies the rest into its buffer), and uWS holds none of the body.
 * The caller keeps the body alive until it is sent (it is referenced here).
 */
import type { HttpResponse } from '../../native/uws.js';
import { noteLargePayload } from '../../workers/pool/memory-reclaim.js';

/** Answers up to this size go in one `end` (uWS buffers at most this much of one if the socket is full). */
export const SLICE_BYTES = 256 * 1024;

export interface SliceState {
  readonly aborted: boolean;
  /** The stall clock (stall-watch.ts). */
  onBlocked?(): void;
  onProgress?(): void;
  onUnblocked?(): void;
}

/** Writes the head (`writeHead`, in the first cork) and `body` as the whole response. */
export function sendSliced(res: HttpResponse, body: Uint8Array, writeHead: () => void, state: SliceState): void {
  const total = body.byteLength;
  const base = res.getWriteOffset();
  /**
   * Offers the socket everything from `at` (body bytes uWS has taken); the kernel takes what fits.
   * The position always comes from uWS's own offset, so a repeated writable event is harmless.
   */
  // uWS keeps the writable handler (and what it holds) until the connection's next request: the
  // body is let go once it is out or the client is gone.
  let pending: Uint8Array | undefined = body;
  /** The body is out or the client gone: its bytes are garbage now, which the thread's reclaimer counts. */
  const letGo = (): void => {
    pending = undefined;
    noteLargePayload(total);
  };
  const writeFrom = (at: number): boolean => {
    if (!pending) return true;
    const [ok, done] = res.tryEnd(pending.subarray(at), total);
    if (done) {
      letGo();
      state.onUnblocked?.();
      return true;
    }
    return ok;
  };
  let ok = true;
  res.cork(() => {
    writeHead();
    ok = writeFrom(0);
  });
  if (ok) return;
  state.onBlocked?.();
  // uWS does not flush its buffer on writable events while a handler is registered, so the
  // handler always writes.
  res.onWritable((offset) => {
    if (state.aborted) {
      if (pending) letGo();
      return true;
    }
    state.onProgress?.();
    return writeFrom(offset - base);
  });
}
