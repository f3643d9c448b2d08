/**
 * Sends a large unary answer in slices: `tryEnd` one slice, and when the socket is full, wait for
 * `onWritable` and go on from what it took. uWS then holds at most one slice of it instead of the
 * whole answer, and the event loop is never held by one big write (a 100 MB `end` stalls every
 * other connection, /healthz included, while uWS copies it).
 */
import type { HttpResponse } from '../../native/uws.js';

/** Answers up to this size go in one `end`. */
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
   * Writes slices from `at` (body bytes uWS has taken) until the socket is full or all is out.
   * The position always comes from uWS's own offset, so a repeated writable event is harmless.
   */
  const writeFrom = (at: number): boolean => {
    for (let pos = at; ; ) {
      const slice = body.subarray(pos, Math.min(total, pos + SLICE_BYTES));
      const [ok, done] = res.tryEnd(slice, total);
      if (done) {
        state.onUnblocked?.();
        return true;
      }
      if (!ok) return false;
      pos += slice.byteLength;
    }
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
    if (state.aborted) return true;
    state.onProgress?.();
    return writeFrom(offset - base);
  });
}
