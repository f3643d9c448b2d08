import { test } from 'node:test';
import assert from 'node:assert/strict';
import hdr from 'hdr-histogram-js';
import { Histogram, highestAt, indexOf } from '../../bench/engine/histogram.js';
import { seededRandom } from '../../bench/engine/schedule.js';

const PERCENTILES = [0, 1, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100];

function reference(highest: number): ReturnType<typeof hdr.build> {
  return hdr.build({ bitBucketSize: 64, autoResize: false, lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Latency-like values: most near a mode, a long tail over several decades. */
function values(count: number, seed: number, highest: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const r = random();
    const v = r < 0.9 ? 300 + random() * 700 : Math.exp(random() * Math.log(highest));
    return Math.min(highest, Math.round(v));
  });
}

test('percentiles, mean, min and max agree with hdr-histogram-js on the same values', () => {
  for (const [seed, highest] of [
    [1, 120_000_000],
    [2, 120_000_000],
    [3, 2 ** 40],
  ] as const) {
    const ours = new Histogram(highest);
    const theirs = reference(highest);
    for (const v of values(20_000, seed, highest)) {
      ours.record(v);
      theirs.recordValue(v);
    }
    for (const p of PERCENTILES) assert.equal(ours.valueAtPercentile(p), theirs.getValueAtPercentile(p), `p${p}, seed ${seed}`);
    assert.deepEqual(
      ours.valuesAtPercentiles(PERCENTILES),
      PERCENTILES.map((p) => theirs.getValueAtPercentile(p)),
    );
    assert.equal(ours.totalCount, theirs.totalCount);
    assert.ok(Math.abs(ours.mean - theirs.mean) < 1e-6 * theirs.mean, `mean ${ours.mean} vs ${theirs.mean}`);
    assert.equal(ours.max, theirs.maxValue);
    assert.equal(ours.min, theirs.minNonZeroValue);
    theirs.destroy();
  }
});

test('every value lands in a range that contains it, 3 significant digits wide at most', () => {
  for (const v of [0, 1, 2047, 2048, 2049, 4095, 4096, 1_000_000, 119_999_999, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 5, 2 ** 40 - 1]) {
    const index = indexOf(v);
    const high = highestAt(index);
    assert.ok(high >= v, `${v} ≤ ${high}`);
    assert.ok(high - v <= Math.max(0, v / 1000), `${v}: range to ${high} within 0.1%`);
    if (v > 0) assert.ok(indexOf(v - 1) <= index);
  }
});

test('shipped counts add up to the same histogram; ranges clamp; an empty histogram answers zeros', () => {
  const a = new Histogram(120_000_000);
  const b = new Histogram(120_000_000);
  for (const v of values(5_000, 7, 120_000_000)) a.record(v);
  for (const v of values(5_000, 8, 120_000_000)) b.record(v);
  const both = new Histogram(120_000_000);
  both.add(a.data());
  both.add(b.data());
  const direct = Histogram.from(a.data());
  direct.add(b);
  assert.equal(both.totalCount, 10_000);
  assert.deepEqual(both.valuesAtPercentiles(PERCENTILES), direct.valuesAtPercentiles(PERCENTILES));
  assert.equal(both.max, Math.max(a.max, b.max));
  assert.equal(both.min, Math.min(a.min, b.min));

  const clamped = new Histogram(120_000_000);
  clamped.record(5e9);
  clamped.record(-3);
  assert.equal(clamped.max, 120_000_000);
  assert.equal(clamped.min, 0);

  const empty = new Histogram(120_000_000);
  assert.equal(empty.valueAtPercentile(99), 0);
  assert.deepEqual(empty.valuesAtPercentiles([50, 99]), [0, 0]);
  assert.equal(empty.mean, 0);
  assert.equal(empty.data().indexes.length, 0);
  assert.throws(() => new Histogram(100), /2048/);
});

test('a value recorded with a count is that many records of it', () => {
  const once = new Histogram(120_000_000);
  const counted = new Histogram(120_000_000);
  for (const v of [1, 700, 5_000, 1_234_567]) {
    for (let i = 0; i < 37; i++) once.record(v);
    counted.record(v, 37);
  }
  assert.equal(counted.totalCount, 4 * 37);
  assert.deepEqual(counted.data(), once.data());
  assert.equal(counted.mean, once.mean);
});
