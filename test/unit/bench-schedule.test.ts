import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrivalSchedule, expectedArrivals, rateAt, timeForArrivals, type Arrival, type RateSegment } from '../../bench/engine/schedule.js';

function all(segments: RateSegment[], arrival: Arrival, seed = 7, workerIndex = 0, workers = 1): number[] {
  const schedule = new ArrivalSchedule({ segments, arrival, seed, workerIndex, workers });
  const out: number[] = [];
  for (let t = schedule.next(); t !== undefined; t = schedule.next()) out.push(t);
  return out;
}

function cv(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance) / mean;
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);

test('a constant rate R over D seconds schedules exactly R·D requests, evenly spaced', () => {
  const times = all([{ durationS: 3, fromRate: 400, toRate: 400 }], { kind: 'constant' });
  assert.equal(times.length, 1200);
  assert.equal(times[0], 0);
  for (const gap of gaps(times)) assert.ok(Math.abs(gap - 2.5) < 1e-6);
  assert.ok(times[times.length - 1]! < 3000);
});

test('Poisson arrivals: the count is near R·D and gaps have a cv near 1; gamma sets the cv', () => {
  const segments = [{ durationS: 100, fromRate: 200, toRate: 200 }];
  const poisson = all(segments, { kind: 'poisson' });
  assert.ok(Math.abs(poisson.length - 20_000) < 600, `count ${poisson.length}`);
  assert.ok(Math.abs(cv(gaps(poisson)) - 1) < 0.05);
  for (const target of [0.5, 2]) {
    const gamma = all(segments, { kind: 'gamma', cv: target });
    assert.ok(Math.abs(cv(gaps(gamma)) - target) < target * 0.08, `cv ${cv(gaps(gamma))} for ${target}`);
    assert.ok(Math.abs(gamma.length - 20_000) < 20_000 * 0.06, `count ${gamma.length}`);
  }
});

test('ramps follow the cumulative rate: stages 10s:500,20s:2000,10s:0', () => {
  const segments: RateSegment[] = [
    { durationS: 10, fromRate: 0, toRate: 500 },
    { durationS: 20, fromRate: 500, toRate: 2000 },
    { durationS: 10, fromRate: 2000, toRate: 0 },
  ];
  assert.equal(expectedArrivals(segments), 2500 + 25_000 + 10_000);
  assert.equal(rateAt(segments, 5), 250);
  assert.equal(rateAt(segments, 20), 1250);
  assert.equal(rateAt(segments, 45), 0);
  assert.ok(Math.abs(timeForArrivals(segments, 2500)! - 10) < 1e-9);
  assert.ok(Math.abs(timeForArrivals(segments, 625)! - 5) < 1e-9);
  const times = all(segments, { kind: 'constant' });
  assert.equal(times.length, 37_500);
  const inFirst = times.filter((t) => t < 10_000).length;
  assert.equal(inFirst, 2500);
  const perSecond = (s: number): number => times.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length;
  assert.ok(Math.abs(perSecond(20) - 1287.5) <= 2, `second 20: ${perSecond(20)}`);
  assert.ok(perSecond(39) < 110);
});

test('threads share one schedule: the union of their arrivals is the single-thread sequence', () => {
  const segments = [{ durationS: 5, fromRate: 300, toRate: 900 }];
  for (const arrival of [{ kind: 'constant' }, { kind: 'poisson' }, { kind: 'gamma', cv: 3 }] as Arrival[]) {
    const one = all(segments, arrival, 11);
    const union = [0, 1, 2].flatMap((i) => all(segments, arrival, 11, i, 3)).sort((a, b) => a - b);
    assert.deepEqual(union, one);
  }
});
