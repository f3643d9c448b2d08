/**
 * Scaling signals: what an endpoint's concurrency tracker exposes at each tick, and a bounded
 * history of those readings from which window averages are taken.
 *
 * The tracker keeps cumulative counters (a concurrency integral updated on every change, and an
 * arrival count) rather than a gauge, so the average between any two readings is exact:
 * Δintegral / Δt, however short the requests that made it up. Sampling a gauge once a tick would
 * miss every request shorter than a tick, and most inference requests are.
 */

export interface ReplicaCounts {
  readonly ready: number;
  readonly starting: number;
  readonly draining: number;
}

export interface ScalingSignals {
  /** Milliseconds on a monotonic clock (the tracker's); every time the policy sees is on it. */
  readonly now: number;
  /** Σ (inFlight + queued) · dt since the tracker started, in request·ms, kept exact on every change. */
  readonly concurrencyIntegral: number;
  /** Requests admitted since the tracker started. */
  readonly arrivals: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly replicas: ReplicaCounts;
}

interface Sample {
  now: number;
  integral: number;
  arrivals: number;
  /** inFlight + queued at `now`: it holds until the next change, so it extends the integral forward. */
  concurrency: number;
}

/** Cumulative counters at one instant, read off the history (interpolated between readings). */
interface Counters {
  integral: number;
  arrivals: number;
}

/**
 * A ring buffer of readings, oldest first. Readings that come closer together than
 * `resolutionMs` (a burst of out-of-band ticks) replace the newest one instead of evicting old
 * history, so a buffer sized for the window keeps covering it.
 */
export class SignalHistory {
  readonly capacity: number;
  readonly resolutionMs: number;
  private readonly ring: Sample[] = [];
  private head = 0;
  private size = 0;

  constructor(capacity: number, resolutionMs = 0) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError(`SignalHistory capacity must be an integer ≥ 2, got ${capacity}`);
    if (!(resolutionMs >= 0)) throw new RangeError(`SignalHistory resolutionMs must be ≥ 0, got ${resolutionMs}`);
    this.capacity = capacity;
    this.resolutionMs = resolutionMs;
  }

  /** A history that covers `windowMs` when readings arrive every `tickMs` (or faster, in bursts). */
  static covering(windowMs: number, tickMs: number): SignalHistory {
    // Kept readings are at least tickMs/2 apart (the newest floats), so this many span the window
    // even when setInterval fires a little early.
    const resolutionMs = tickMs / 2;
    return new SignalHistory(Math.ceil(windowMs / resolutionMs) + 2, resolutionMs);
  }

  get length(): number {
    return this.size;
  }

  push(signals: ScalingSignals): void {
    const sample: Sample = {
      now: signals.now,
      integral: signals.concurrencyIntegral,
      arrivals: signals.arrivals,
      concurrency: signals.inFlight + signals.queued,
    };
    const newest = this.size > 0 ? this.at(this.size - 1) : undefined;
    if (newest && (sample.now < newest.now || sample.integral < newest.integral || sample.arrivals < newest.arrivals)) {
      // Time or a counter went backwards: the tracker restarted and older readings no longer subtract.
      this.clear();
    } else if (newest && sample.now === newest.now) {
      this.ring[this.slot(this.size - 1)] = sample;
      return;
    } else if (this.size >= 2 && newest && newest.now - this.at(this.size - 2).now < this.resolutionMs) {
      this.ring[this.slot(this.size - 1)] = sample;
      return;
    }
    if (this.size < this.capacity) {
      this.ring[this.slot(this.size)] = sample;
      this.size += 1;
    } else {
      this.ring[this.head] = sample;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  clear(): void {
    this.ring.length = 0;
    this.head = 0;
    this.size = 0;
  }

  /**
   * Mean in-flight + queued requests over [now − windowMs, now]: Δintegral / Δt. When the history
   * is shorter than the window it averages over what there is; with no span at all (a single
   * reading taken at `now`) it is the instantaneous value. Zero with no readings.
   */
  averageConcurrency(windowMs: number, now: number): number {
    if (this.size === 0) return 0;
    const span = this.span(windowMs, now);
    if (span === undefined) return this.at(this.size - 1).concurrency;
    return (this.countersAt(now).integral - this.countersAt(span.from).integral) / (now - span.from);
  }

  /** Admitted requests per second over [now − windowMs, now]; zero until the history spans some time. */
  qps(windowMs: number, now: number): number {
    if (this.size === 0) return 0;
    const span = this.span(windowMs, now);
    if (span === undefined) return 0;
    return ((this.countersAt(now).arrivals - this.countersAt(span.from).arrivals) * 1000) / (now - span.from);
  }

  /** The part of the window the history covers, or undefined when it covers no time. */
  private span(windowMs: number, now: number): { from: number } | undefined {
    const from = Math.max(now - windowMs, this.at(0).now);
    return now > from ? { from } : undefined;
  }

  /**
   * Counters at time t. Past the newest reading the integral grows at the newest concurrency
   * (it holds until the tracker sees a change) and arrivals stay put; between readings both are
   * interpolated, which is exact when concurrency did not change in between.
   */
  private countersAt(t: number): Counters {
    const newest = this.at(this.size - 1);
    if (t >= newest.now) return { integral: newest.integral + newest.concurrency * (t - newest.now), arrivals: newest.arrivals };
    for (let i = this.size - 2; i >= 0; i--) {
      const before = this.at(i);
      if (before.now <= t) {
        const after = this.at(i + 1);
        const f = (t - before.now) / (after.now - before.now);
        return {
          integral: before.integral + f * (after.integral - before.integral),
          arrivals: before.arrivals + f * (after.arrivals - before.arrivals),
        };
      }
    }
    const oldest = this.at(0);
    return { integral: oldest.integral, arrivals: oldest.arrivals };
  }

  private slot(i: number): number {
    return (this.head + i) % this.capacity;
  }

  /** The i-th reading, oldest first; callers stay within 0 ≤ i < size, where every slot is filled. */
  private at(i: number): Sample {
    return this.ring[this.slot(i)]!;
  }
}
