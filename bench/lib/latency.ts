/**
 * Latency histograms for the load generators, kept the way autocannon's lib/histUtil.js keeps
 * them: an explicit range and precision, encoded to compressed base64 to travel (into results
 * files, across processes), decoded and added to merge repetitions. Values are recorded in
 * microseconds so sub-millisecond latencies on loopback keep three significant digits.
 */
import hdr from 'hdr-histogram-js';

export type Histogram = ReturnType<typeof hdr.build>;

/** 1 µs .. 120 s at 3 significant digits; larger values are clamped to the top (a timeout ends sooner anyway). */
const LOWEST_US = 1;
const HIGHEST_US = 120_000_000;
const SIGNIFICANT_DIGITS = 3;

export function createLatencyHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 32,
    autoResize: false,
    lowestDiscernibleValue: LOWEST_US,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    useWebAssembly: false,
  });
}

export function recordMs(histogram: Histogram, ms: number): void {
  const us = Math.round(ms * 1000);
  histogram.recordValue(us < LOWEST_US ? LOWEST_US : us > HIGHEST_US ? HIGHEST_US : us);
}

/** What a report shows of a histogram, in milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
}

const roundMs = (us: number): number => Math.round(us) / 1000;

export function summarize(histogram: Histogram): LatencySummary {
  if (histogram.totalCount === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 };
  return {
    count: histogram.totalCount,
    mean: roundMs(histogram.mean),
    p50: roundMs(histogram.getValueAtPercentile(50)),
    p90: roundMs(histogram.getValueAtPercentile(90)),
    p99: roundMs(histogram.getValueAtPercentile(99)),
    p99_9: roundMs(histogram.getValueAtPercentile(99.9)),
    max: roundMs(histogram.maxValue),
  };
}

export function encodeHistogram(histogram: Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

export function decodeHistogram(encoded: string): Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 32, false);
}

/** Adds encoded histograms (e.g. one per repetition) into one and summarizes it. */
export function mergeEncoded(encoded: readonly string[]): LatencySummary {
  const merged = createLatencyHistogram();
  for (const one of encoded) {
    const histogram = decodeHistogram(one);
    merged.add(histogram);
    histogram.destroy();
  }
  const summary = summarize(merged);
  merged.destroy();
  return summary;
}
