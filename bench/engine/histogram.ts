/**
 * An HDR histogram for the load threads, recorded in integers.
 *
 * The layout is Gil Tene's HdrHistogram at 3 significant digits from 1 unit (the one hdr-histogram-js
 * builds with `lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3`): 2048 sub-buckets of
 * unit width, then buckets of doubling width with 1024 sub-buckets each. Percentiles, means and
 * equivalent values follow hdr-histogram-js exactly (test/unit/bench-histogram.test.ts compares
 * them). What differs is the cost: recording is a `clz32`, a shift and an increment (hdr-histogram-js
 * computes `log2` and `pow` in floating point per value); a percentile or the mean is one pass over
 * the counts; and a histogram crosses threads as its non-zero counts only (a few hundred numbers,
 * no deflate and base64). Not loading hdr-histogram-js also spares each thread its start-up.
 */

const SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10;
const SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE; // 1024
const SUB_BUCKET_COUNT = SUB_BUCKET_HALF_COUNT * 2; // 2048: unit resolution up to 2 × 10^3
const TWO_31 = 2 ** 31;

/** A histogram's content as it crosses threads: its non-zero counts and exact extremes. */
export interface HistogramData {
  highest: number;
  total: number;
  min: number;
  max: number;
  indexes: Uint32Array;
  counts: Float64Array;
}

/** Index of the bucket (power of two) that holds `value`, for 1 ≤ value < 2^53. */
function bucketOf(value: number): number {
  if (value < TWO_31) {
    const bucket = 31 - Math.clz32(value) - SUB_BUCKET_HALF_COUNT_MAGNITUDE;
    return bucket > 0 ? bucket : 0;
  }
  const high = Math.floor(value / 2 ** 32);
  const msb = high > 0 ? 63 - Math.clz32(high) : 31;
  return msb - SUB_BUCKET_HALF_COUNT_MAGNITUDE;
}

/** The counts-array index of `value` (an integer ≥ 0). */
export function indexOf(value: number): number {
  if (value < SUB_BUCKET_COUNT) return value;
  const bucket = bucketOf(value);
  const sub = value < TWO_31 ? value >>> bucket : Math.floor(value / 2 ** bucket);
  return bucket * SUB_BUCKET_HALF_COUNT + sub;
}

/** The lowest value that lands at `index`, and the width of its range. */
function lowestAt(index: number): number {
  let bucket = (index >>> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
  let sub = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
  if (bucket < 0) {
    sub -= SUB_BUCKET_HALF_COUNT;
    bucket = 0;
  }
  return sub * 2 ** bucket;
}

function widthAt(index: number): number {
  const bucket = (index >>> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
  return bucket > 0 ? 2 ** bucket : 1;
}

/** The largest value equivalent to (counted together with) values at `index`. */
export function highestAt(index: number): number {
  return lowestAt(index) + widthAt(index) - 1;
}

/** Counts-array length that covers 1 .. highest (hdr-histogram-js's establishSize). */
function lengthFor(highest: number): number {
  let smallestUntrackable = SUB_BUCKET_COUNT;
  let buckets = 1;
  while (smallestUntrackable <= highest) {
    if (smallestUntrackable > Number.MAX_SAFE_INTEGER / 2) {
      buckets++;
      break;
    }
    smallestUntrackable *= 2;
    buckets++;
  }
  return (buckets + 1) * SUB_BUCKET_HALF_COUNT;
}

/** hdr-histogram-js's `ulp` (the spacing of doubles near x), used to round a percentile's count. */
function ulp(x: number): number {
  return 2 ** (Math.floor(Math.log2(x)) - 52);
}

export class Histogram {
  /** Values above this are recorded as this (the caller clamps; a timeout ends sooner anyway). */
  readonly highest: number;
  private readonly counts: Float64Array;
  private total = 0;
  private minValue = Number.MAX_SAFE_INTEGER;
  private maxValue = 0;

  constructor(highest: number) {
    if (!Number.isSafeInteger(highest) || highest < SUB_BUCKET_COUNT) throw new Error('histogram highest value must be an integer ≥ 2048');
    this.highest = highest;
    this.counts = new Float64Array(lengthFor(highest));
  }

  get totalCount(): number {
    return this.total;
  }

  /** The smallest and largest values recorded, exactly (0 when empty). */
  get min(): number {
    return this.total === 0 ? 0 : this.minValue;
  }

  get max(): number {
    return this.maxValue;
  }

  /** Records an integer value, clamped to 0 .. highest; `count` times. */
  record(value: number, count = 1): void {
    const v = value > this.highest ? this.highest : value > 0 ? value : 0;
    this.counts[v < SUB_BUCKET_COUNT ? v : indexOf(v)]! += count;
    this.total += count;
    if (v > this.maxValue) this.maxValue = v;
    if (v < this.minValue) this.minValue = v;
  }

  /** The value at `percentile` (0..100), as hdr-histogram-js's getValueAtPercentile answers it. */
  valueAtPercentile(percentile: number): number {
    return this.valuesAtPercentiles([percentile])[0]!;
  }

  /** Several percentiles (in ascending order) in one pass over the counts. */
  valuesAtPercentiles(percentiles: readonly number[]): number[] {
    if (this.total === 0) return percentiles.map(() => 0);
    const out: number[] = [];
    const counts = this.counts;
    const last = this.lastIndex();
    let i = this.firstIndex();
    let seen = counts[i]!;
    for (const percentile of percentiles) {
      const p = percentile > 100 ? 100 : percentile;
      const fp = (p / 100) * this.total;
      const target = fp > 0 ? Math.max(Math.ceil(fp - ulp(fp)), 1) : 1;
      while (seen < target && i < last) seen += counts[++i]!;
      out.push(p === 0 ? lowestAt(i) : highestAt(i));
    }
    return out;
  }

  /** The mean, each value taken at the middle of its equivalence range (as hdr-histogram-js does). */
  get mean(): number {
    if (this.total === 0) return 0;
    let sum = 0;
    const counts = this.counts;
    for (let i = this.firstIndex(), last = this.lastIndex(); i <= last; i++) {
      const n = counts[i]!;
      if (n !== 0) sum += (lowestAt(i) + Math.floor(widthAt(i) / 2)) * n;
    }
    return sum / this.total;
  }

  /** Adds another histogram's counts (the same `highest`, or a smaller one). */
  add(other: Histogram | HistogramData): void {
    if (other instanceof Histogram) {
      if (other.counts.length > this.counts.length) throw new Error('cannot add a histogram of a larger range');
      if (other.total === 0) return;
      // Only the range between its smallest and largest values holds counts.
      const counts = other.counts;
      for (let i = other.firstIndex(), last = other.lastIndex(); i <= last; i++) this.counts[i]! += counts[i]!;
      this.merge(other.total, other.minValue, other.maxValue);
      return;
    }
    if (other.total === 0) return;
    for (let k = 0; k < other.indexes.length; k++) {
      const index = other.indexes[k]!;
      if (index >= this.counts.length) throw new Error('cannot add a histogram of a larger range');
      this.counts[index]! += other.counts[k]!;
    }
    this.merge(other.total, other.min, other.max);
  }

  /** The non-zero counts, to send to another thread. */
  data(): HistogramData {
    let nonZero = 0;
    const counts = this.counts;
    const first = this.total === 0 ? 0 : this.firstIndex();
    const last = this.total === 0 ? -1 : this.lastIndex();
    for (let i = first; i <= last; i++) if (counts[i] !== 0) nonZero++;
    const indexes = new Uint32Array(nonZero);
    const values = new Float64Array(nonZero);
    for (let i = first, k = 0; i <= last; i++) {
      if (counts[i] !== 0) {
        indexes[k] = i;
        values[k++] = counts[i]!;
      }
    }
    return { highest: this.highest, total: this.total, min: this.min, max: this.maxValue, indexes, counts: values };
  }

  static from(data: HistogramData): Histogram {
    const histogram = new Histogram(data.highest);
    histogram.add(data);
    return histogram;
  }

  /** Counts lie between the indexes of the smallest and largest values recorded: loops stay there. */
  private firstIndex(): number {
    return indexOf(this.minValue);
  }

  private lastIndex(): number {
    return indexOf(this.maxValue);
  }

  private merge(total: number, min: number, max: number): void {
    if (total === 0) return;
    this.total += total;
    if (max > this.maxValue) this.maxValue = max;
    if (min < this.minValue) this.minValue = min;
  }
}
