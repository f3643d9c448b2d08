/**
 * What one client connection may hold: requests in flight on a WebSocket, bytes of replies the
 * gateway holds for it, and how long a response may wait for a client that stopped reading.
 * Admission of a WebSocket message, and when an admitted request may start, are pure functions of
 * the socket's load and these limits.
 *
 * Two limits, two answers. A request past `ws_max_in_flight` (running and held ones together) is
 * refused (SY_CONNECTION_BUSY, the others go on); a client that keeps sending into a full socket
 * (as many refusals in a row as it may have requests in flight) is abusing it, and the socket is
 * closed with 1008. Bytes are backpressure instead: a unary answer's size is known only once the
 * replica made it, so a request starts only while the socket's unread replies plus the expected
 * answers of its running requests stay within `ws_max_buffered_bytes`, and waits in the gateway
 * (held, not yet sent to a replica) otherwise. A client that reads is slowed to its own pace,
 * never refused for it; one that stops reading costs the gateway at most the budget plus one
 * answer. The expected size of an answer is the largest of the socket's last few answers (of its
 * endpoint's, before the socket has any); with none known, one unary request runs alone until its
 * answer gives one. Bytes that reading does not free (stream replay tails) refuse new requests
 * once they pass the budget.
 *
 * A socket that takes no bytes for the stall timeout is closed with 1008 and its requests cancelled.
 */
import type { StallWatch } from './stall-watch.js';

export interface ConnectionBudget {
  /** Requests one WebSocket may have open (running or held). */
  maxInFlight: number;
  /** Reply bytes the gateway holds for one WebSocket: unread replies plus the expected answers of its running requests. */
  maxBufferedBytes: number;
  /** Finds responses (HTTP and WebSocket) whose client took nothing for `server.stall_timeout_ms`. */
  stalls: StallWatch;
}

export interface SocketLoad {
  /** Requests open on the socket: running, and held until its client reads. */
  inFlight: number;
  /** Bytes held for the socket that reading does not free (replay tails of its streams). */
  retainedBytes: number;
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
  } else if (load.retainedBytes >= limits.maxBufferedBytes) {
    reason = `this socket's streams hold ${load.retainedBytes} bytes of replay tail (server.ws_max_buffered_bytes is ${limits.maxBufferedBytes})`;
  }
  if (reason === undefined) return { verdict: 'accept' };
  if (load.refusedInARow + 1 >= limits.maxInFlight) return { verdict: 'close', reason: `${load.refusedInARow + 1} requests refused in a row` };
  return { verdict: 'refuse', reason };
}

export interface ReplyLoad {
  /** Reply bytes held for the socket that its client has not taken (queued, in uWS, replay tails). */
  unreadBytes: number;
  /** Unary requests running on replicas for this socket, whose answers are still to come. */
  runningUnary: number;
  /** The expected size of one answer; undefined before the socket's first answer. */
  expectedReplyBytes: number | undefined;
}

/**
 * Whether an admitted request may start now. A stream starts while the unread bytes are under the
 * budget (its chunks are paced by credit). A unary request also needs room for its answer; one
 * runs whenever none does, so an answer larger than the whole budget is still served, one at a time.
 * Holds: unread + running × expected < budget + expected after every start.
 */
export function mayStart(load: ReplyLoad, unary: boolean, maxBufferedBytes: number): boolean {
  if (load.unreadBytes >= maxBufferedBytes) return false;
  if (!unary || load.runningUnary === 0) return true;
  if (load.expectedReplyBytes === undefined) return false;
  return load.unreadBytes + (load.runningUnary + 1) * load.expectedReplyBytes <= maxBufferedBytes;
}

/** Answers a socket's expected answer size is taken from (the largest of them). */
export const REPLY_SIZE_WINDOW = 8;

/** The sizes of a socket's last REPLY_SIZE_WINDOW unary answers; the largest is what the next is expected to be. */
export class ReplySizes {
  private readonly sizes: number[] = [];
  private next = 0;
  /** Kept with each answer: it is read for every request. */
  private largest: number | undefined;

  note(bytes: number): void {
    if (this.sizes.length < REPLY_SIZE_WINDOW) this.sizes.push(bytes);
    else this.sizes[this.next] = bytes;
    this.next = (this.next + 1) % REPLY_SIZE_WINDOW;
    let largest = 0;
    for (const size of this.sizes) if (size > largest) largest = size;
    this.largest = largest;
  }

  /** The largest recent answer; undefined before the first. */
  expected(): number | undefined {
    return this.largest;
  }
}
