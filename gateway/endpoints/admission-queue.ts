/**
 * The bounded FIFO in front of an endpoint's replicas. Entries whose request already left
 * (cancelled, expired) stay in place and are skipped when they reach the head, so a cancel costs
 * nothing; the tracker's `queued` counts only live ones, which is what `max_queue` bounds. A retry
 * goes back to the front: it has waited longest.
 */
import type { ConcurrencyTracker } from '../autoscaler/concurrency-tracker.js';
import type { Call } from './call.js';

/** Dead entries at the head beyond which the array is compacted. */
const COMPACT_AFTER = 1024;

export class AdmissionQueue {
  private items: Call[] = [];
  private head = 0;

  constructor(private readonly tracker: ConcurrencyTracker) {}

  /** Requests waiting (live entries only). */
  get size(): number {
    return this.tracker.queued;
  }

  /** A new request waits at the back. */
  push(call: Call): void {
    call.state = 'queued';
    this.tracker.enqueued();
    this.items.push(call);
  }

  /** A request that ran and will be retried goes to the front; it is not a new arrival. */
  pushFront(call: Call): void {
    call.state = 'queued';
    this.tracker.requeued();
    if (this.head > 0) this.items[--this.head] = call;
    else this.items.unshift(call);
  }

  /** The oldest live request, left in place (skips entries whose request already left). */
  peek(): Call | undefined {
    while (this.head < this.items.length) {
      const call = this.items[this.head]!;
      if (call.state === 'queued') return call;
      this.head++;
    }
    this.compact();
    return undefined;
  }

  /** Takes the request `peek` returned: it is about to run. */
  take(call: Call): void {
    if (this.items[this.head] === call) this.head++;
    this.tracker.dequeued();
    this.compact();
  }

  /** A queued request left without running (deadline, client gone, failed); its entry goes stale. */
  abandon(): void {
    this.tracker.abandoned();
  }

  /** Takes every live request out (to fail them together), except those `keep` leaves waiting in their order. */
  takeAll(keep?: (call: Call) => boolean): Call[] {
    const out: Call[] = [];
    const kept: Call[] = [];
    while (this.head < this.items.length) {
      const call = this.items[this.head++]!;
      if (call.state === 'queued') (keep?.(call) ? kept : out).push(call);
    }
    this.items.push(...kept);
    this.compact();
    return out;
  }

  private compact(): void {
    if (this.head > COMPACT_AFTER && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
