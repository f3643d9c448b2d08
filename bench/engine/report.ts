/**
 * The whole `--json` document (schema `switchyard-bench/2`, docs/bench.md): what was asked, each
 * run, and for sweeps, searches and comparisons what they concluded.
 */
import type { RunResult } from './result.js';

export const SCHEMA = 'switchyard-bench/2';

export interface LabeledRun {
  /** e.g. "rate 2000", "A round 2", "probe 3". */
  label: string;
  /** Which target of a comparison: 'a' (--url) or 'b' (--compare). */
  target?: 'a' | 'b';
  /** Open loop: the rate asked for. */
  rate?: number;
  result: RunResult;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface Comparison {
  a: string;
  b: string;
  rounds: number;
  /** b / a per round: throughput, corrected p50 and p99. */
  ratios: { throughput: Spread; p50: Spread; p99: Spread };
  a_median: { throughput: number; p50: number; p99: number };
  b_median: { throughput: number; p50: number; p99: number };
}

export interface SearchOutcome {
  /** The highest rate that met the SLO; null when none did. */
  bestRate: number | null;
  probes: Array<{ rate: number; met: boolean }>;
}

export interface BenchReport {
  schema: typeof SCHEMA;
  kind: 'run' | 'stages' | 'sweep' | 'search' | 'compare';
  startedAt: string;
  settings: Record<string, unknown>;
  runs: LabeledRun[];
  search?: SearchOutcome;
  comparison?: Comparison;
  /** Problems that make the numbers less than the truth (the schedule not kept, no answer at all). */
  warnings: string[];
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const median = sorted.length === 0 ? 0 : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const r = (v: number): number => Math.round(v * 1000) / 1000;
  return { median: r(median), min: r(sorted[0] ?? 0), max: r(sorted[sorted.length - 1] ?? 0) };
}

export function compareRuns(runs: LabeledRun[], a: string, b: string): Comparison {
  const as = runs.filter((r) => r.target === 'a').map((r) => r.result);
  const bs = runs.filter((r) => r.target === 'b').map((r) => r.result);
  const rounds = Math.min(as.length, bs.length);
  const ratio = (f: (r: RunResult) => number): Spread =>
    spread(Array.from({ length: rounds }, (_, i) => {
      const base = f(as[i]!);
      return base === 0 ? 0 : f(bs[i]!) / base;
    }));
  const medians = (list: RunResult[]): Comparison['a_median'] => ({
    throughput: spread(list.map((r) => r.rates.throughput)).median,
    p50: spread(list.map((r) => r.latency.corrected.p50)).median,
    p99: spread(list.map((r) => r.latency.corrected.p99)).median,
  });
  return {
    a,
    b,
    rounds,
    ratios: { throughput: ratio((r) => r.rates.throughput), p50: ratio((r) => r.latency.corrected.p50), p99: ratio((r) => r.latency.corrected.p99) },
    a_median: medians(as),
    b_median: medians(bs),
  };
}
