/**
 * The open-loop schedule: when each request is meant to be sent, whatever the server does.
 *
 * A rate profile is piecewise linear (a constant `--rate`, or `--stages` ramps). Arrivals are drawn
 * as a unit-rate renewal process in "operational time" u (constant gaps, exponential gaps for
 * Poisson, gamma gaps of a chosen coefficient of variation) and mapped to wall time through the
 * inverse of the cumulative rate Λ(t) = ∫ rate. So a ramp stays Poisson at every instant, and a
 * constant rate R over D seconds schedules exactly R·D requests.
 *
 * Several worker threads share one schedule without talking: each draws the same sequence (same
 * seed) and keeps every W-th arrival. The union of their sends is the one intended process, not a
 * superposition of W thinner ones (which for gamma arrivals would be a different process).
 */

/** One piece of the rate profile: the rate moves linearly from `fromRate` to `toRate`. */
export interface RateSegment {
  durationS: number;
  fromRate: number;
  toRate: number;
}

export type Arrival = { kind: 'constant' } | { kind: 'poisson' } | { kind: 'gamma'; cv: number };

export interface ScheduleOptions {
  segments: readonly RateSegment[];
  arrival: Arrival;
  seed: number;
  /** This thread's share: arrivals index ≡ workerIndex (mod workers). */
  workerIndex?: number;
  workers?: number;
}

export function profileDurationS(segments: readonly RateSegment[]): number {
  return segments.reduce((sum, s) => sum + s.durationS, 0);
}

/** Expected number of arrivals over the whole profile: Λ(end). */
export function expectedArrivals(segments: readonly RateSegment[]): number {
  return segments.reduce((sum, s) => sum + ((s.fromRate + s.toRate) / 2) * s.durationS, 0);
}

/** The rate the profile asks for at `tS` seconds from its start (0 past the end). */
export function rateAt(segments: readonly RateSegment[], tS: number): number {
  let start = 0;
  for (const s of segments) {
    if (tS < start + s.durationS) return s.fromRate + ((s.toRate - s.fromRate) * (tS - start)) / s.durationS;
    start += s.durationS;
  }
  return 0;
}

/** A small, fast, seedable generator (sfc32); Math.random cannot be seeded. */
export function seededRandom(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** Gaps of mean 1 with the arrival process's shape. */
export function gapSampler(arrival: Arrival, random: () => number): () => number {
  if (arrival.kind === 'constant') return () => 1;
  if (arrival.kind === 'poisson') return () => -Math.log(1 - random());
  const cv = arrival.cv;
  if (cv === 0) return () => 1;
  // Gamma(k, θ) with mean kθ = 1 and cv = 1/√k.
  const k = 1 / (cv * cv);
  const theta = cv * cv;
  return () => gamma(k, random) * theta;
}

function normal(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Marsaglia and Tsang; shapes below 1 through the Gamma(k+1)·U^(1/k) identity. */
function gamma(k: number, random: () => number): number {
  if (k < 1) return gamma(k + 1, random) * Math.pow(1 - random(), 1 / k);
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/**
 * Maps operational time u (expected arrivals so far) to seconds since the start: Λ⁻¹(u), or
 * undefined when u lies past the end of the profile.
 */
export function timeForArrivals(segments: readonly RateSegment[], u: number): number | undefined {
  let start = 0;
  let done = 0;
  for (const s of segments) {
    const area = ((s.fromRate + s.toRate) / 2) * s.durationS;
    if (u < done + area) {
      const need = u - done;
      const slope = (s.toRate - s.fromRate) / s.durationS;
      // Solve fromRate·x + slope/2·x² = need for x in [0, duration]; this form stays exact when slope → 0.
      const root = Math.sqrt(Math.max(0, s.fromRate * s.fromRate + 2 * slope * need));
      const x = need <= 0 ? 0 : (2 * need) / (s.fromRate + root);
      return start + Math.min(Math.max(x, 0), s.durationS);
    }
    done += area;
    start += s.durationS;
  }
  return undefined;
}

/** Yields this thread's intended send times, in milliseconds from the start, in order. */
export class ArrivalSchedule {
  private readonly gap: () => number;
  private readonly workerIndex: number;
  private readonly workers: number;
  private u: number;
  private index = 0;
  private finished = false;

  constructor(private readonly options: ScheduleOptions) {
    this.workerIndex = options.workerIndex ?? 0;
    this.workers = options.workers ?? 1;
    this.gap = gapSampler(options.arrival, seededRandom(options.seed));
    // Constant arrivals start at once; random ones after their first gap, like any renewal process.
    this.u = options.arrival.kind === 'constant' ? 0 : this.gap();
  }

  /** The next intended send time of this thread (ms from the start), or undefined when the profile is over. */
  next(): number | undefined {
    while (!this.finished) {
      const u = this.u;
      const mine = this.index % this.workers === this.workerIndex;
      this.index++;
      this.u += this.gap();
      const t = timeForArrivals(this.options.segments, u);
      if (t === undefined) {
        this.finished = true;
        return undefined;
      }
      if (mine) return t * 1000;
    }
    return undefined;
  }
}
