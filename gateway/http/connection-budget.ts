/**
 * What one client connection may hold: requests in flight on a WebSocket, bytes of replies the
 * gateway buffers for it, and how long a response may wait for a client that stopped reading.
 * Admission of a WebSocket message is a pure function of the socket's load and these limits.
 *
 * A socket over a limit has its new requests refused (SY_CONNECTION_BUSY, its other requests go
 * on); a client that keeps sending into a full socket (as many refusals in a row as it may have
 * requests in flight) is abusing it, and the socket is closed with 1008. A socket that takes no
 * bytes for the stall timeout is closed with 1008 as well, and its requests are cancelled.
 */
import type { StallWatch } from './stall-watch.js';

export interface ConnectionBudget {
  /** Requests one WebSocket may have in flight. */
  maxInFlight: number;
  /** Reply bytes buffered for one WebSocket (queued here and in uWS) above which new requests are refused. */
  maxBufferedBytes: number;
  /** Finds responses (HTTP and WebSocket) whose client took nothing for `server.stall_timeout_ms`. */
  stalls: StallWatch;
}

export interface SocketLoad {
  inFlight: number;
  bufferedBytes: number;
  /** Requests refused since the last one accepted. */
  refusedInARow: number;
}

export type Admission = { verdict: 'accept' } | { verdict: 'refuse' | 'close'; reason: string };

/** WebSocket close code for a client that broke its budget (RFC 6455 §7.4.1: policy violation). */
export const CLOSE_POLICY_VIOLATION = 1008;

export function admitRequest(load: SocketLoad, limits: Pick<ConnectionBudget, 'maxInFlight' | 'maxBufferedBytes'>): Admission {
  let reason: string | undefined;
  if (load.inFlight >= limits.maxInFlight) {
    reason = `this socket already has ${load.inFlight} requests in flight (server.ws_max_in_flight is ${limits.maxInFlight})`;
  } else if (load.bufferedBytes >= limits.maxBufferedBytes) {
    reason = `this socket has ${load.bufferedBytes} bytes of replies it has not read (server.ws_max_buffered_bytes is ${limits.maxBufferedBytes})`;
  }
  if (reason === undefined) return { verdict: 'accept' };
  if (load.refusedInARow + 1 >= limits.maxInFlight) return { verdict: 'close', reason: `${load.refusedInARow + 1} requests refused in a row` };
  return { verdict: 'refuse', reason };
}
