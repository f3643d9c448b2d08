/**
 * The engine's two kinds of histogram (histogram.ts), kept as autocannon's lib/histUtil.js keeps
 * them: an explicit range and precision, recorded in the load threads, shipped to the main thread
 * (as non-zero counts) and added there. Latencies are in whole microseconds (1 µs .. 120 s, 3
 * significant digits); counts (chunks or bytes per stream) in units up to 2^40.
 */
import type { LatencySummary } from '../lib/latency.js';
import { Histogram, type HistogramData } from './histogram.js';

export { Histogram, type HistogramData, type LatencySummary };

const LATENCY_HIGHEST_US = 120_000_000;
const COUNT_HIGHEST = 2 ** 40;

export function createLatencyHistogram(): Histogram {
  return new Histogram(LATENCY_HIGHEST_US);
}

export function createCountHistogram(): Histogram {
  return new Histogram(COUNT_HIGHEST);
}

/** Records a latency given in milliseconds (performance.now() differences) as whole microseconds, at least 1; `count` times. */
export function recordMs(histogram: Histogram, ms: number, count = 1): void {
  const us = Math.round(ms * 1000);
  histogram.record(us < 1 ? 1 : us, count);
}

export function recordCount(histogram: Histogram, value: number): void {
  histogram.record(value < 1 ? 1 : Math.round(value));
}

/** Adds shipped histograms into one; `undefined` entries (nothing recorded) are skipped. */
export function merged(data: ReadonlyArray<HistogramData | undefined>, kind: 'latency' | 'count' = 'latency'): Histogram {
  const histogram = kind === 'latency' ? createLatencyHistogram() : createCountHistogram();
  for (const one of data) if (one) histogram.add(one);
  return histogram;
}

const LATENCY_PERCENTILES = [50, 90, 99, 99.9] as const;
const roundMs = (us: number): number => Math.round(us) / 1000;

/**
 * A percentile is the top of its 0.1%-wide range (as HdrHistogram reports it); the max is exact.
 * Capped at the max, a percentile never reads above it.
 */
function percentiles(histogram: Histogram, points: readonly number[]): number[] {
  const max = histogram.max;
  return histogram.valuesAtPercentiles(points).map((v) => (v > max ? max : v));
}

export function summarize(histogram: Histogram): LatencySummary {
  if (histogram.totalCount === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 };
  const [p50, p90, p99, p99_9] = percentiles(histogram, LATENCY_PERCENTILES) as [number, number, number, number];
  return {
    count: histogram.totalCount,
    mean: roundMs(histogram.mean),
    p50: roundMs(p50),
    p90: roundMs(p90),
    p99: roundMs(p99),
    p99_9: roundMs(p99_9),
    max: roundMs(histogram.max),
  };
}

export interface CountSummary {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

export function summarizeCounts(histogram: Histogram): CountSummary {
  if (histogram.totalCount === 0) return { count: 0, mean: 0, p50: 0, p99: 0, min: 0, max: 0 };
  const [p50, p99] = percentiles(histogram, [50, 99]) as [number, number];
  return {
    count: histogram.totalCount,
    mean: Math.round(histogram.mean * 100) / 100,
    p50,
    p99,
    min: histogram.min,
    max: histogram.max,
  };
}

/** The percentile spectrum (ms) at fixed points, for the report's corrected-vs-uncorrected chart. */
export const SPECTRUM_PERCENTILES = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100] as const;

export function spectrum(histogram: Histogram): Array<[number, number]> {
  if (histogram.totalCount === 0) return [];
  const values = percentiles(histogram, SPECTRUM_PERCENTILES);
  return SPECTRUM_PERCENTILES.map((p, i) => [p, Math.round(p === 100 ? histogram.max : values[i]!) / 1000]);
}
