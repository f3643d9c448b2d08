/**
 * Paces the requests of one WebSocket by the bytes its answers will take (connection-budget.ts):
 * a request starts (goes to the endpoint) only while the socket's unread replies plus the
 * expected answers of its running unary requests fit `ws_max_buffered_bytes`; otherwise it is held
 * here, in order of arrival, until the client reads, or answered as expired when its deadline
 * passes first. Unary answers have no credit (one comes whole, of a size known only once made),
 * so this is what keeps a client that stops reading from piling answers up in the gateway.
 *
 * An answer is expected to be as large as the largest of the socket's last few; a socket with no
 * answer yet takes its endpoint's last few WebSocket answers instead (so a slow first request
 * does not hold the others of a new socket), and only when there are none either does its first
 * unary request run alone until it answers.
 */
import { mayStart, ReplySizes } from './connection-budget.js';

export interface PacedRequest {
  /** A unary request (not a stream): its answer comes whole. */
  readonly unary: boolean;
  /** Wall-clock ms past which a held request is given up. */
  readonly deadline: number;
}

export interface PacerHooks<R> {
  /** Reply bytes the socket holds that its client has not taken (queued, in uWS, replay tails). */
  unreadBytes(): number;
  /** Hands a request to the endpoint. */
  start(request: R): void;
  /** A held request's deadline passed before it could start (after `waitedMs` held). */
  expire(request: R, waitedMs: number): void;
}

export class RequestPacer<R extends PacedRequest> {
  /** Admitted requests waiting for the client to read, in order of arrival. */
  private held: R[] = [];
  private readonly timers = new Map<R, NodeJS.Timeout>();
  /** Started unary requests whose answers are still to come. */
  private readonly awaited = new Set<R>();
  private readonly replySizes = new ReplySizes();
  private releasing = false;

  constructor(
    private readonly maxBufferedBytes: number,
    private readonly hooks: PacerHooks<R>,
    /** The endpoint's recent WebSocket answers, all sockets: the estimate before this socket has its own. */
    private readonly endpointSizes: ReplySizes = new ReplySizes(),
  ) {}

  /** A new admitted request: it starts now if nothing is held before it and the budget has room, else it is held. */
  admit(request: R): void {
    if (this.held.length === 0 && this.mayStart(request)) {
      this.start(request);
      return;
    }
    this.held.push(request);
    const waitMs = Math.max(0, request.deadline - Date.now());
    const timer = setTimeout(() => {
      this.unhold(request);
      this.hooks.expire(request, waitMs);
    }, waitMs);
    timer.unref();
    this.timers.set(request, timer);
  }

  isHeld(request: R): boolean {
    return this.timers.has(request);
  }

  /**
   * Starts held requests, in order, while the budget has room. Called once bytes may have left
   * (a flush, a drain) and never from inside an endpoint callback.
   */
  release(): void {
    // A request may be answered while it starts (an endpoint that refuses it); its flush comes later.
    if (this.releasing) return;
    this.releasing = true;
    try {
      while (this.held.length > 0 && this.mayStart(this.held[0]!)) {
        const next = this.held.shift()!;
        clearTimeout(this.timers.get(next));
        this.timers.delete(next);
        this.start(next);
      }
    } finally {
      this.releasing = false;
    }
  }

  /** The request's last reply, of `bytes`: a unary answer leaves the expected bytes and teaches the next estimate. */
  answered(request: R, bytes: number): void {
    if (!this.awaited.delete(request)) return;
    this.replySizes.note(bytes);
    this.endpointSizes.note(bytes);
  }

  /** The request is cancelled: held, it is dropped; running, its answer is no longer expected. */
  withdraw(request: R): void {
    this.unhold(request);
    this.awaited.delete(request);
  }

  /** The socket closed: nothing more starts or expires. */
  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.held = [];
    this.awaited.clear();
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Expected answer bytes of the running unary requests. */
  expectedBytes(): number {
    return this.awaited.size * (this.expectedReply() ?? 0);
  }

  private expectedReply(): number | undefined {
    return this.replySizes.expected() ?? this.endpointSizes.expected();
  }

  private mayStart(request: R): boolean {
    const load = { unreadBytes: this.hooks.unreadBytes(), runningUnary: this.awaited.size, expectedReplyBytes: this.expectedReply() };
    return mayStart(load, request.unary, this.maxBufferedBytes);
  }

  private start(request: R): void {
    if (request.unary) this.awaited.add(request);
    this.hooks.start(request);
  }

  private unhold(request: R): void {
    const timer = this.timers.get(request);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(request);
    this.held.splice(this.held.indexOf(request), 1);
  }
}
