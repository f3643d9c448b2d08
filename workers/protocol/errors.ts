/**
 * One error type with a stable code, and one table from code to HTTP status and WebSocket close
 * code. Class identity does not survive a thread hop, msgpack or NATS; the code does, so every
 * layer branches on `code` and never on the message.
 */

export interface ErrorSpec {
  readonly status: number;
  /** What the code means, as the README's error table says it. */
  readonly doc: string;
  /** Whether a unary request that failed with this code may be retried on another replica. */
  readonly retryable?: boolean;
}

export const ERROR_CODES = {
  SY_BAD_REQUEST: { status: 400, doc: 'The body could not be parsed or does not fit the endpoint.' },
  SY_UNAUTHORIZED: { status: 401, doc: 'The endpoint needs `Authorization: Bearer <key>` and the key is missing or wrong.' },
  SY_ORIGIN_REFUSED: { status: 403, doc: 'A browser page on an origin that the CORS policy does not list (a preflight or a WebSocket upgrade).' },
  SY_NOT_FOUND: { status: 404, doc: 'No such endpoint or route.' },
  SY_METHOD_NOT_ALLOWED: { status: 405, doc: 'The route exists but not for this method.' },
  SY_NOT_ACCEPTABLE: { status: 406, doc: 'The endpoint cannot produce the media type named in `Accept`.' },
  SY_PAYLOAD_TOO_LARGE: { status: 413, doc: 'The body is larger than `server.max_body_bytes` (or the endpoint limit).' },
  SY_UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'The body is neither application/json nor application/msgpack.' },
  SY_RANGE_NOT_SATISFIABLE: { status: 416, doc: 'The `Range` header does not overlap the file.' },
  SY_CONNECTION_BUSY: { status: 429, doc: "This WebSocket has `server.ws_max_in_flight` requests open (running or held until it reads), or its streams' replay tails hold `server.ws_max_buffered_bytes`; this request was refused, the others go on." },
  SY_QUEUE_FULL: { status: 503, doc: 'Every replica is busy and the endpoint queue is full; retry after `Retry-After` seconds.' },
  SY_NO_REPLICA: { status: 503, doc: 'The endpoint has no ready replica and none became ready in time, or its replicas keep failing and restarts are backing off.', retryable: true },
  SY_CLUSTER_UNAVAILABLE: { status: 503, doc: "The gateway's NATS connection is down and only node agents could serve this request; retry after `Retry-After` seconds.", retryable: true },
  SY_SHUTTING_DOWN: { status: 503, doc: 'The gateway is draining for shutdown.' },
  SY_DEADLINE_EXCEEDED: { status: 504, doc: 'The request did not finish before its deadline; its work was cancelled on its replica (which is replaced if it does not stop), or it never started (held on its WebSocket until the client read).' },
  SY_STREAM_FIRST_CHUNK_TIMEOUT: { status: 504, doc: 'The stream produced no chunk within its first-chunk limit (`stream_timeouts.first_chunk_ms`, `X-Stream-First-Chunk-Ms`); its work was aborted.' },
  SY_STREAM_IDLE_TIMEOUT: { status: 504, doc: 'The stream produced no chunk for longer than its idle limit (`stream_timeouts.idle_ms`, `X-Stream-Idle-Ms`); its work was aborted.' },
  SY_STREAM_TOTAL_TIMEOUT: { status: 504, doc: 'The stream did not end within its total limit (`stream_timeouts.total_ms`, `X-Request-Timeout-Ms`); its work was aborted.' },
  SY_PREDICTOR_ERROR: { status: 500, doc: 'The predictor threw while handling the request.' },
  SY_PREDICTOR_OUTPUT: { status: 500, doc: 'The predictor returned something that cannot be sent (not JSON-able, not bytes, or a bad file path).' },
  SY_RESPONSE_TOO_LARGE: { status: 500, doc: 'The answer is larger than `max_response_bytes` (server or endpoint); it was not sent.' },
  SY_FILE_REFUSED: { status: 500, doc: 'The predictor returned a file path outside its output folder; nothing was served.' },
  SY_STREAM_UNSUPPORTED: { status: 400, doc: 'The request asked for `"stream": true` but the predictor has no `predictStream`.' },
  SY_STREAM_GONE: { status: 410, doc: 'The stream to resume is unknown, ended, past its reconnect grace window, or no longer holds the chunks after the given sequence number.' },
  SY_REPLICA_LOST: { status: 502, doc: 'The replica or node serving the request died.', retryable: true },
  SY_CANCELLED: { status: 499, doc: 'The client cancelled the request.' },
  SY_INTERNAL: { status: 500, doc: 'An unexpected gateway error.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  /** Seconds a client should wait before retrying (sent as `Retry-After`). */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { retryAfterS?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchyardError';
    this.code = code;
    this.retryAfterS = options?.retryAfterS;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): WireError {
    return { code: this.code, message: this.message, ...(this.retryAfterS === undefined ? {} : { retryAfterS: this.retryAfterS }) };
  }
}

/** The plain shape an error travels in across threads, msgpack and NATS. */
export interface WireError {
  code: string;
  message: string;
  retryAfterS?: number;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/** Rebuilds an error that crossed a boundary; unknown codes become SY_INTERNAL. */
export function fromWire(wire: WireError): SwitchyardError {
  const code = isErrorCode(wire.code) ? wire.code : 'SY_INTERNAL';
  return new SwitchyardError(code, String(wire.message ?? ''), wire.retryAfterS === undefined ? undefined : { retryAfterS: wire.retryAfterS });
}

/** Normalises anything thrown into a SwitchyardError, never leaking a stack trace. */
export function toSwitchyardError(err: unknown, fallback: ErrorCode = 'SY_INTERNAL'): SwitchyardError {
  if (err instanceof SwitchyardError) return err;
  if (err && typeof err === 'object' && isErrorCode((err as { code?: unknown }).code)) {
    return fromWire(err as WireError);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new SwitchyardError(fallback, message);
}

export function responseTooLarge(bytes: number, limit: number): SwitchyardError {
  return new SwitchyardError('SY_RESPONSE_TOO_LARGE', `the answer has ${bytes} bytes, more than max_response_bytes (${limit}); it was not sent`);
}

export function httpStatusOf(code: string): number {
  return isErrorCode(code) ? ERROR_CODES[code].status : 500;
}

/** WebSocket close codes for errors that end a whole socket (4000 + HTTP status, per RFC 6455 private range). */
export function wsCloseCodeOf(code: string): number {
  return 4000 + httpStatusOf(code);
}

export function isRetryable(code: string): boolean {
  return isErrorCode(code) && (ERROR_CODES[code] as ErrorSpec).retryable === true;
}
