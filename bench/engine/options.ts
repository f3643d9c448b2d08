/**
 * The small languages of `switchyard bench`: arrival processes, stages, sweeps and SLOs. Pure
 * parsers; each error message names its option.
 */
import type { Arrival, RateSegment } from './schedule.js';

export class UsageError extends Error {}

/** `constant`, `poisson`, or `gamma:<cv>` (cv > 0; 1 is Poisson-like, above 1 is burstier). */
export function parseArrival(text: string): Arrival {
  if (text === 'constant' || text === 'uniform') return { kind: 'constant' };
  if (text === 'poisson') return { kind: 'poisson' };
  const gamma = /^gamma:([0-9.]+)$/.exec(text);
  if (gamma) {
    const cv = Number(gamma[1]);
    if (!(cv > 0) || !Number.isFinite(cv)) throw new UsageError(`--arrival gamma:<cv> needs a positive cv (got "${text}")`);
    return { kind: 'gamma', cv };
  }
  throw new UsageError(`--arrival must be constant, poisson or gamma:<cv> (got "${text}")`);
}

/** `10s`, `500ms`, `2m`, or a bare number of seconds. */
export function parseDuration(text: string, option: string): number {
  const match = /^([0-9]*\.?[0-9]+)(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${option}: "${text}" is not a duration (like 10s, 500ms, 2m)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  return unit === 'ms' ? value / 1000 : unit === 'm' ? value * 60 : value;
}

/**
 * `--stages 10s:500,20s:2000,10s:0`: each stage moves the rate linearly from where the previous one
 * ended (the first from `startRate`) to its own target, over its duration (k6's ramping arrival rate).
 */
export function parseStages(text: string, startRate = 0): RateSegment[] {
  const segments: RateSegment[] = [];
  let rate = startRate;
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const match = /^([^:]+):([0-9]*\.?[0-9]+)$/.exec(part);
    if (!match) throw new UsageError(`--stages: "${part}" must look like <duration>:<rate>, e.g. 10s:500`);
    const durationS = parseDuration(match[1]!, '--stages');
    if (!(durationS > 0)) throw new UsageError(`--stages: "${part}" needs a positive duration`);
    const target = Number(match[2]);
    segments.push({ durationS, fromRate: rate, toRate: target });
    rate = target;
  }
  if (segments.length === 0) throw new UsageError('--stages needs at least one <duration>:<rate>');
  return segments;
}

/** `--sweep 500..8000x8`: 8 rates evenly spaced from 500 to 8000, both ends included. */
export function parseSweep(text: string): number[] {
  const match = /^([0-9]*\.?[0-9]+)\.\.([0-9]*\.?[0-9]+)x([0-9]+)$/.exec(text.trim());
  if (!match) throw new UsageError(`--sweep must look like <from>..<to>x<points>, e.g. 500..8000x8 (got "${text}")`);
  const from = Number(match[1]);
  const to = Number(match[2]);
  const points = Number(match[3]);
  if (!(from > 0) || !(to >= from)) throw new UsageError(`--sweep: rates must be positive and ascending (got "${text}")`);
  if (!Number.isInteger(points) || points < 1 || points > 100) throw new UsageError(`--sweep: points must be 1..100 (got ${match[3]})`);
  if (points === 1) return [from];
  return Array.from({ length: points }, (_, i) => Math.round((from + ((to - from) * i) / (points - 1)) * 100) / 100);
}

/** One SLO term: a percentile of a latency metric at most `limitMs`. */
export interface SloTerm {
  name: string;
  metric: 'latency' | 'firstChunk';
  percentile: number;
  limitMs: number;
}

export interface Slo {
  terms: SloTerm[];
  /** Failed requests at most this fraction of those sent (default 1%). */
  maxErrorRate: number;
}

/** `--slo p99=50ms,ttft_p99=200ms[,errors=1%]`; latency terms are corrected latencies. */
export function parseSlo(text: string): Slo {
  const terms: SloTerm[] = [];
  let maxErrorRate = 0.01;
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [key, value] = part.split('=');
    if (!key || value === undefined) throw new UsageError(`--slo: "${part}" must look like p99=50ms`);
    if (key === 'errors') {
      const pct = /^([0-9]*\.?[0-9]+)%$/.exec(value);
      if (!pct) throw new UsageError(`--slo: errors must be a percentage like 1% (got "${value}")`);
      maxErrorRate = Number(pct[1]) / 100;
      continue;
    }
    const match = /^(ttft_)?p([0-9]+(?:\.[0-9]+)?)$/.exec(key);
    if (!match) throw new UsageError(`--slo: unknown term "${key}" (use pNN for latency, ttft_pNN for time to first chunk, errors=N%)`);
    const percentile = Number(match[2]);
    if (!(percentile > 0 && percentile <= 100)) throw new UsageError(`--slo: percentile in "${key}" must be in (0, 100]`);
    const limitMs = parseDuration(value, '--slo') * 1000;
    terms.push({ name: key, metric: match[1] ? 'firstChunk' : 'latency', percentile, limitMs });
  }
  if (terms.length === 0) throw new UsageError('--slo needs at least one term, e.g. p99=50ms');
  return { terms, maxErrorRate };
}
