/**
 * Checks on how a request is framed that uWS leaves to us. uWS frames a body by the first
 * Content-Length it sees; a proxy in front may have used another one, so two that disagree make
 * the body's end ambiguous (request smuggling). RFC 9112 §6.3: answer 400 and close. The same
 * value repeated is one length (RFC 9110 §8.6).
 */
import type { HttpRequest } from '../../native/uws.js';

export function hasConflictingLength(req: HttpRequest): boolean {
  let length: string | undefined;
  let conflict = false;
  req.forEach((key, value) => {
    if (key !== 'content-length') return;
    if (length !== undefined && value !== length) conflict = true;
    length = value;
  });
  return conflict;
}

export const CONFLICTING_LENGTH_MESSAGE = 'the request has Content-Length headers that disagree';
