/**
 * Writing whole answers with uWS: JSON, errors (never 200, never a stack), all corked.
 * An answer to HEAD carries the headers and the Content-Length the GET would have, and no body:
 * a body there would be read by keep-alive clients as the start of the next response.
 */
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { statusLine } from './status-lines.js';

const headRequests = new WeakSet<HttpResponse>();

/** Answers written to `res` from now on have no body (the request was HEAD). */
export function answerWithoutBody(res: HttpResponse): void {
  headRequests.add(res);
}

/** Ends `res` with `body`, or only its length for HEAD. */
function endWith(res: HttpResponse, body: string, closeConnection = false): void {
  if (headRequests.has(res)) {
    if (closeConnection) {
      res.endWithoutBody(0, true);
    } else {
      // endWithoutBody(length) leaves uWS waiting for that many bytes: the length goes as a header.
      res.writeHeader('content-length', String(Buffer.byteLength(body)));
      res.endWithoutBody();
    }
  } else {
    res.end(body, closeConnection);
  }
}

export function errorBody(err: SwitchyardError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message } });
}

/**
 * Call inside a cork (or a uWS handler before any await). `closeConnection` for requests whose
 * framing cannot be trusted: the rest of what the client sent is not read as another request.
 */
export function writeError(res: HttpResponse, err: SwitchyardError, extraHeaders?: Record<string, string>, closeConnection = false): void {
  res.writeStatus(statusLine(err.status));
  res.writeHeader('content-type', 'application/json');
  if (err.retryAfterS !== undefined) res.writeHeader('retry-after', String(Math.max(1, Math.ceil(err.retryAfterS))));
  if (extraHeaders) for (const [k, v] of Object.entries(extraHeaders)) res.writeHeader(k, v);
  endWith(res, errorBody(err), closeConnection);
}

export function writeJson(res: HttpResponse, status: number, value: unknown): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', 'application/json');
  endWith(res, JSON.stringify(value));
}

export function writeText(res: HttpResponse, status: number, contentType: string, text: string): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', contentType);
  endWith(res, text);
}
