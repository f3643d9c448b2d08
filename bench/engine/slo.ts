/**
 * SLOs: whether a run met one, its goodput, and the search for the highest rate that meets it.
 *
 * Goodput counts the successful answers that met the SLO's per-request limits (for each metric,
 * the largest limit any term gives it: `p99=50ms` makes 50 ms the limit of one request), per
 * second of the run. A run meets the SLO when every percentile term holds on corrected latencies,
 * failures stay within the error budget, and the generator sent what was scheduled: a rate the
 * generator could not offer is not a rate the server sustained. The generator's own lag and waits
 * for a connection are inside corrected latencies already, so they can only make a met SLO more
 * conservative; a missed one with such problems is marked `inconclusive` (the search retries it).
 */
import type { Histogram } from './histograms.js';
import type { Slo } from './options.js';
import type { SloThresholds } from './plan.js';

export interface SloTermResult {
  name: string;
  limitMs: number;
  observedMs: number;
  met: boolean;
}

export interface SloResult {
  met: boolean;
  /** Answers per second that met the per-request limits. */
  goodput: number;
  terms: SloTermResult[];
  errorRate: number;
  maxErrorRate: number;
  /** Why the run does not count, when `met` is false for a reason other than a term. */
  reasons: string[];
  /** Missed while the generator itself lagged or waited for connections: not the server's verdict alone. */
  inconclusive: boolean;
}

export function perRequestLimits(slo: Slo): SloThresholds {
  const limits: SloThresholds = {};
  for (const term of slo.terms) {
    if (term.metric === 'latency') limits.latencyMs = Math.max(limits.latencyMs ?? 0, term.limitMs);
    else limits.firstChunkMs = Math.max(limits.firstChunkMs ?? 0, term.limitMs);
  }
  return limits;
}

export interface SloInputs {
  latency: Histogram;
  firstChunk: Histogram;
  sent: number;
  failed: number;
  good: number;
  durationS: number;
  underSent: boolean;
  generatorLimited: boolean;
  scheduleProblems: string[];
}

export function evaluateSlo(slo: Slo, run: SloInputs): SloResult {
  const terms = slo.terms.map((term) => {
    const h = term.metric === 'latency' ? run.latency : run.firstChunk;
    const observedMs = h.totalCount === 0 ? Infinity : h.valueAtPercentile(term.percentile) / 1000;
    return { name: term.name, limitMs: term.limitMs, observedMs: Number.isFinite(observedMs) ? Math.round(observedMs * 1000) / 1000 : -1, met: observedMs <= term.limitMs };
  });
  const errorRate = run.sent === 0 ? 1 : run.failed / run.sent;
  const reasons: string[] = [];
  if (errorRate > slo.maxErrorRate) reasons.push(`${(errorRate * 100).toFixed(2)}% of requests failed (budget ${(slo.maxErrorRate * 100).toFixed(2)}%)`);
  if (run.underSent) reasons.push(...run.scheduleProblems.map((p) => `schedule not kept: ${p}`));
  const met = terms.every((t) => t.met) && reasons.length === 0;
  return {
    met,
    inconclusive: !met && !run.underSent && run.generatorLimited,
    goodput: Math.round((run.good / run.durationS) * 10) / 10,
    terms,
    errorRate: Math.round(errorRate * 1e6) / 1e6,
    maxErrorRate: slo.maxErrorRate,
    reasons,
  };
}

export interface SearchProbe {
  rate: number;
  met: boolean;
}

export interface SearchSettings {
  startRate: number;
  maxRate: number;
  /** Stop when the bracket [highest met, lowest missed] is this tight (relative). */
  precision: number;
  maxProbes: number;
}

/**
 * The next rate to try, or undefined when the search is over: double while the SLO holds, halve
 * while it does not, then bisect the bracket between the highest rate that met it and the lowest
 * that missed.
 */
export function nextSearchRate(probes: readonly SearchProbe[], settings: SearchSettings): number | undefined {
  if (probes.length >= settings.maxProbes) return undefined;
  if (probes.length === 0) return settings.startRate;
  const met = probes.filter((p) => p.met).map((p) => p.rate);
  const missed = probes.filter((p) => !p.met).map((p) => p.rate);
  const best = met.length ? Math.max(...met) : undefined;
  const above = missed.filter((r) => best === undefined || r > best);
  const lowestMiss = above.length ? Math.min(...above) : undefined;
  if (lowestMiss === undefined) {
    if (best! >= settings.maxRate) return undefined;
    return Math.min(settings.maxRate, best! * 2);
  }
  if (best === undefined) {
    const next = lowestMiss / 2;
    return next < 1 ? undefined : round(next);
  }
  if (lowestMiss / best - 1 <= settings.precision) return undefined;
  return round((best + lowestMiss) / 2);
}

/** The highest rate that met the SLO (undefined when none did). */
export function searchResult(probes: readonly SearchProbe[]): number | undefined {
  const met = probes.filter((p) => p.met).map((p) => p.rate);
  return met.length ? Math.max(...met) : undefined;
}

const round = (rate: number): number => Math.round(rate * 10) / 10;
