/** Writing whole answers with uWS: JSON, errors (never 200, never a stack), all corked. */
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { statusLine } from './status-lines.js';

export function errorBody(err: SwitchyardError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message } });
}

/** Call inside a cork (or a uWS handler before any await). */
export function writeError(res: HttpResponse, err: SwitchyardError, extraHeaders?: Record<string, string>): void {
  res.writeStatus(statusLine(err.status));
  res.writeHeader('content-type', 'application/json');
  if (err.retryAfterS !== undefined) res.writeHeader('retry-after', String(Math.max(1, Math.ceil(err.retryAfterS))));
  if (extraHeaders) for (const [k, v] of Object.entries(extraHeaders)) res.writeHeader(k, v);
  res.end(errorBody(err));
}

export function writeJson(res: HttpResponse, status: number, value: unknown): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', 'application/json');
  res.end(JSON.stringify(value));
}

export function writeText(res: HttpResponse, status: number, contentType: string, text: string): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', contentType);
  res.end(text);
}
