/**
 * Reads a request body from uWS. Chunks are detached when the callback returns, so each is copied;
 * a body that arrives in one chunk (the common case) is copied exactly once.
 */
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';

export function readBody(
  res: HttpResponse,
  limit: number,
  onBody: (body: Uint8Array) => void,
  onError: (err: SwitchyardError) => void,
): void {
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
    if (isLast && parts === undefined) {
      onBody(new Uint8Array(chunk.slice(0)));
      return;
    }
    (parts ??= []).push(Buffer.from(chunk.slice(0)));
    if (isLast) onBody(Buffer.concat(parts, size));
  });
}
