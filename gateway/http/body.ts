/**
 * Reads a request body from uWS. Chunks are detached when the callback returns, so each is copied;
 * a body that arrives in one chunk (the common case) is copied exactly once, and so is one in
 * many chunks when its Content-Length is known: each chunk goes straight into one buffer of that
 * size (no list of copies joined at the end).
 */
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';

export function readBody(
  res: HttpResponse,
  limit: number,
  onBody: (body: Uint8Array) => void,
  onError: (err: SwitchyardError) => void,
  /** The declared Content-Length, when there is one (0: unknown or empty). */
  expectedBytes = 0,
): void {
  // undefined: to be allocated at the declared size; null: size unknown, chunks are listed.
  let whole: Uint8Array | null | undefined = expectedBytes > 0 && expectedBytes <= limit ? undefined : null;
  let parts: Buffer[] | undefined;
  let size = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    size += chunk.byteLength;
    if (size > limit) {
      failed = true;
      onError(new SwitchyardError('SY_PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`));
      return;
    }
    if (isLast && parts === undefined && !whole) {
      onBody(new Uint8Array(chunk.slice(0)));
      return;
    }
    if (whole !== null && size <= expectedBytes) {
      whole ??= new Uint8Array(expectedBytes);
      whole.set(new Uint8Array(chunk), size - chunk.byteLength);
      if (isLast) onBody(size === expectedBytes ? whole : whole.subarray(0, size));
      return;
    }
    if (whole) {
      // More than declared (uWS normally refuses that): what came so far joins the list.
      (parts ??= []).push(Buffer.from(whole.buffer, 0, size - chunk.byteLength));
      whole = null;
    }
    (parts ??= []).push(Buffer.from(chunk.slice(0)));
    if (isLast) onBody(Buffer.concat(parts, size));
  });
}
