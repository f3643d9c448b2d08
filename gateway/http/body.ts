/**
 * Reads a request body from uWS. Chunks are detached when the callback returns, so each is copied;
 * a body that arrives in one chunk (the common case) is copied exactly once, and so is one in
 * many chunks when its Content-Length is known: each chunk goes straight into one buffer of that
 * size (no list of copies joined at the end). A large body is read into shared memory
 * (SharedArrayBuffer), which the replica thread then reads where it lies: no copy to get it there,
 * and the gateway still has it for a retry (workers/pool/payload-transfer.ts).
 */
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { OUT_OF_BAND_BYTES, sharedBytes } from '../../workers/pool/payload-transfer.js';

/** Room for a body of `size` bytes: shared with the replica thread when it is large. */
const bodyBytes = (size: number): Uint8Array => (size >= OUT_OF_BAND_BYTES ? sharedBytes(size) : new Uint8Array(size));

/** One chunk (detached once the callback returns) as bytes of the body's own. */
function copyOf(chunk: ArrayBuffer): Uint8Array {
  if (chunk.byteLength < OUT_OF_BAND_BYTES) return new Uint8Array(chunk.slice(0));
  const bytes = sharedBytes(chunk.byteLength);
  bytes.set(new Uint8Array(chunk));
  return bytes;
}

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
  // uWS keeps this handler until the connection's next request: once the body is handed on,
  // nothing of it stays here (`failed` then also ignores anything after).
  const handOn = (body: Uint8Array): void => {
    failed = true;
    whole = null;
    parts = undefined;
    onBody(body);
  };
  res.onData((chunk, isLast) => {
    if (failed) return;
    size += chunk.byteLength;
    if (size > limit) {
      failed = true;
      whole = null;
      parts = undefined;
      onError(new SwitchyardError('SY_PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`));
      return;
    }
    if (isLast && parts === undefined && !whole) {
      handOn(copyOf(chunk));
      return;
    }
    if (whole !== null && size <= expectedBytes) {
      whole ??= bodyBytes(expectedBytes);
      whole.set(new Uint8Array(chunk), size - chunk.byteLength);
      if (isLast) handOn(size === expectedBytes ? whole : whole.subarray(0, size));
      return;
    }
    if (whole) {
      // More than declared (uWS normally refuses that): what came so far joins the list.
      (parts ??= []).push(Buffer.from(whole.buffer, 0, size - chunk.byteLength));
      whole = null;
    }
    (parts ??= []).push(Buffer.from(chunk.slice(0)));
    if (isLast) handOn(joined(parts, size));
  });
}

function joined(parts: readonly Uint8Array[], size: number): Uint8Array {
  const body = bodyBytes(size);
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return body;
}
