/**
 * Counts what an endpoint is doing, on the hot path, for next to nothing: requests in flight
 * (holding a replica's concurrency token), queued (waiting for a token), admitted, and the exact
 * time integral of in-flight + queued, so the autoscaler can average concurrency over any window
 * from two readings instead of sampling.
 */
import { performance } from 'node:perf_hooks';

export class ConcurrencyTracker {
  inFlight = 0;
  queued = 0;
  arrivals = 0;
  completed = 0;
  private integral = 0;
  private last: number;

  /** `now` is a monotonic clock in ms (injected so tests drive time). */
  constructor(private readonly now: () => number = () => performance.now()) {
    this.last = now();
  }

  private advance(): void {
    const now = this.now();
    this.integral += (this.inFlight + this.queued) * (now - this.last);
    this.last = now;
  }

  /** A request took a replica's token at once. */
  admitted(): void {
    this.advance();
    this.arrivals++;
    this.inFlight++;
  }

  /** A request is waiting for a token. */
  enqueued(): void {
    this.advance();
    this.arrivals++;
    this.queued++;
  }

  /** A running request goes back to the front of the queue (a retry): not a new arrival. */
  requeued(): void {
    this.advance();
    this.queued++;
  }

  /** A queued request got a token. */
  dequeued(): void {
    this.advance();
    this.queued--;
    this.inFlight++;
  }

  /** A queued request left without being served (deadline, client gone). */
  abandoned(): void {
    this.advance();
    this.queued--;
  }

  /** A request gave its token back. */
  finished(): void {
    this.advance();
    this.inFlight--;
    this.completed++;
  }

  /** Σ (inFlight + queued) · dt in request·ms, up to now. */
  concurrencyIntegral(): number {
    this.advance();
    return this.integral;
  }
}
