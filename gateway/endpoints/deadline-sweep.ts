/**
 * Every request's deadline in one heap, checked by one timer every few milliseconds instead of a
 * timer per request. Other per-request clocks (stream limits) ride on the same timer as watchers.
 * The timer runs only while something is tracked.
 */
import { DeadlineHeap } from '../routing/deadline-heap.js';
import type { Call } from './call.js';
import type { Clock, Timer } from './clock.js';

export const DEADLINE_SWEEP_MS = 20;

/** Something else swept on the same timer. */
export interface SweepWatcher {
  /** Entries under watch: the timer keeps running while any watcher has some. */
  readonly size: number;
  sweep(): void;
}

export class DeadlineSweep {
  private readonly heap = new DeadlineHeap<Call>();
  private timer: Timer | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    /** Called once per request whose deadline passed before it settled. */
    private readonly onExpired: (call: Call) => void,
    /** Called after each sweep that expired something. */
    private readonly afterSweep: () => void,
    private readonly watchers: readonly SweepWatcher[] = [],
  ) {}

  track(call: Call): void {
    this.heap.push(call);
    this.arm();
  }

  /** A watcher has something new to watch: make sure the timer runs. */
  wake(): void {
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    this.timer = this.clock.schedule(() => {
      this.timer = undefined;
      this.sweep();
      if (this.heap.size > 0 || this.watchers.some((w) => w.size > 0)) this.arm();
    }, DEADLINE_SWEEP_MS);
  }

  private sweep(): void {
    for (const watcher of this.watchers) if (watcher.size > 0) watcher.sweep();
    const expired = this.heap.popExpired(this.clock.wallMs());
    if (expired.length === 0) return;
    for (const call of expired) this.onExpired(call);
    this.afterSweep();
  }
}
