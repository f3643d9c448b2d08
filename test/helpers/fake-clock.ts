/** A clock the test moves by hand: timers fire, in order, only inside `advance`. */
import type { Clock, Timer } from '../../gateway/endpoints/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(private readonly wallOrigin = 1_700_000_000_000, start = 1_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  wallMs(): number {
    return this.wallOrigin + this.t;
  }

  schedule(fn: () => void, ms: number): Timer {
    const entry: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(entry);
    return { cancel: () => (this.pending = this.pending.filter((p) => p !== entry)) };
  }

  /** Moves time forward by `ms`, firing every timer that falls due (timers set meanwhile included). */
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending) if (p.at <= until && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      if (!next) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = until;
  }

  /** Moves time forward without firing timers, as if the event loop were busy meanwhile. */
  jump(ms: number): void {
    this.t += ms;
  }

  /** Timers waiting to fire. */
  get timers(): number {
    return this.pending.length;
  }
}
