/**
 * Histograms of the engine, kept as autocannon's lib/histUtil.js keeps them: explicit range and
 * precision, recorded in the worker threads, encoded (compressed base64) to cross to the main
 * thread, decoded and added there. Latencies are in microseconds (1 µs .. 120 s, 3 significant
 * digits); counts (chunks or bytes per stream) in units from 1 to 2^40.
 */
import hdr from 'hdr-histogram-js';
import { createLatencyHistogram, decodeHistogram, encodeHistogram, recordMs, summarize, type Histogram, type LatencySummary } from '../lib/latency.js';

export { createLatencyHistogram, encodeHistogram, recordMs, summarize, type Histogram, type LatencySummary };

const COUNT_HIGHEST = 2 ** 40;

export function createCountHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 64,
    autoResize: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: COUNT_HIGHEST,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

export function recordCount(histogram: Histogram, value: number): void {
  histogram.recordValue(value < 1 ? 1 : value > COUNT_HIGHEST ? COUNT_HIGHEST : Math.round(value));
}

export function decodeCounts(encoded: string): Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 64, false);
}

/** Adds an encoded histogram into `into` (latency kind unless `counts`). */
export function addEncoded(into: Histogram, encoded: string, counts = false): void {
  const other = counts ? decodeCounts(encoded) : decodeHistogram(encoded);
  into.add(other);
  other.destroy();
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
  return {
    count: histogram.totalCount,
    mean: Math.round(histogram.mean * 100) / 100,
    p50: histogram.getValueAtPercentile(50),
    p99: histogram.getValueAtPercentile(99),
    min: histogram.minNonZeroValue,
    max: histogram.maxValue,
  };
}

/** The percentile spectrum (ms) at fixed points, for the report's corrected-vs-uncorrected chart. */
export const SPECTRUM_PERCENTILES = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100] as const;

export function spectrum(histogram: Histogram): Array<[number, number]> {
  if (histogram.totalCount === 0) return [];
  return SPECTRUM_PERCENTILES.map((p) => [p, Math.round(p === 100 ? histogram.maxValue : histogram.getValueAtPercentile(p)) / 1000]);
}
