import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryReclaimer, reclaimDecision } from '../../workers/pool/memory-reclaim.js';

describe('memory reclaim after large payloads', () => {
  test('nothing to collect below the threshold, however quiet', () => {
    assert.deepEqual(reclaimDecision({ pendingBytes: 10, lastLargeAt: 0 }, 1e9, 100, 1000), { collect: false });
  });

  test('past the threshold: wait out the quiet spell, then collect', () => {
    assert.deepEqual(reclaimDecision({ pendingBytes: 100, lastLargeAt: 500 }, 900, 100, 1000), { collect: false, waitMs: 600 });
    assert.deepEqual(reclaimDecision({ pendingBytes: 100, lastLargeAt: 500 }, 1500, 100, 1000), { collect: true });
  });

  test('a reclaimer collects once after a burst, not while payloads keep coming, and counts from zero again', async () => {
    let clock = 0;
    let collected = 0;
    const reclaimer = new MemoryReclaimer(() => collected++, () => clock, 100, 5);
    reclaimer.note(60);
    reclaimer.note(60);
    // Payloads keep coming: every look finds the last one too recent.
    for (let i = 0; i < 3; i++) {
      clock += 1;
      reclaimer.note(1);
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(collected, 0);
    }
    clock += 10;
    await waitUntil(() => collected === 1);
    assert.equal(reclaimer.collections, 1);
    // Below the threshold again: no second collection however long it stays quiet.
    reclaimer.note(50);
    clock += 1000;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(collected, 1);
  });

  test('without a collector (gc refused) it does nothing', async () => {
    const reclaimer = new MemoryReclaimer(undefined, () => 1e9, 1, 1);
    reclaimer.note(10);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(reclaimer.collections, 0);
  });
});

async function waitUntil(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(predicate(), 'the collection never ran');
}
