import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { placeReplicas, type PlacementCandidate } from '../../gateway/autoscaler/placer.js';

const pool = (node: string, region: string, device: string, free: number): PlacementCandidate => ({ node, region, device, free });
const where = (placed: PlacementCandidate[]): string[] => placed.map((c) => `${c.node}/${c.device}`);

describe('placeReplicas', () => {
  test('fills the first preferred device kind with room before the next', () => {
    const gpu = pool('local', 'local', 'cuda:0', 2);
    const cpu = pool('local', 'local', 'cpu', 10);
    assert.deepEqual(where(placeReplicas({ count: 3, devicePreference: ['cuda:0', 'cpu'] }, [cpu, gpu])), [
      'local/cuda:0',
      'local/cuda:0',
      'local/cpu',
    ]);
  });

  test('a full preferred kind is skipped, not waited on', () => {
    const placed = placeReplicas({ count: 2, devicePreference: ['coreml', 'cpu'] }, [pool('local', 'local', 'coreml', 0), pool('local', 'local', 'cpu', 4)]);
    assert.deepEqual(where(placed), ['local/cpu', 'local/cpu']);
  });

  test('"cuda:N" matches that GPU alone', () => {
    const cuda0 = pool('local', 'local', 'cuda:0', 2);
    const cuda1 = pool('local', 'local', 'cuda:1', 3);
    const cuda10 = pool('local', 'local', 'cuda:10', 9);
    const cpu = pool('local', 'local', 'cpu', 8);
    assert.deepEqual(where(placeReplicas({ count: 3, devicePreference: ['cuda:1'] }, [cuda0, cuda10, cuda1, cpu])), ['local/cuda:1', 'local/cuda:1', 'local/cuda:1']);
    assert.deepEqual(where(placeReplicas({ count: 5, devicePreference: ['cuda:1', 'cuda:0'] }, [cuda0, cuda10, cuda1, cpu])), [
      'local/cuda:1',
      'local/cuda:1',
      'local/cuda:1',
      'local/cuda:0',
      'local/cuda:0',
    ]);
  });

  test('within a kind, preferred regions first, then the pool with the most room', () => {
    const eu = pool('eu-1', 'eu', 'cpu', 1);
    const us = pool('us-1', 'us', 'cpu', 10);
    const ap = pool('ap-1', 'ap', 'cpu', 50);
    const placed = placeReplicas({ count: 3, devicePreference: ['cpu'], regionPreference: ['eu', 'us'] }, [ap, us, eu]);
    assert.deepEqual(where(placed), ['eu-1/cpu', 'us-1/cpu', 'us-1/cpu']);
    // Regions outside the list come after every listed one.
    const overflow = placeReplicas({ count: 3, devicePreference: ['cpu'], regionPreference: ['eu'] }, [pool('us-1', 'us', 'cpu', 1), eu, pool('ap-1', 'ap', 'cpu', 1)]);
    assert.deepEqual(where(overflow), ['eu-1/cpu', 'us-1/cpu', 'ap-1/cpu']);
  });

  test('device preference outranks region preference', () => {
    const remoteGpu = pool('gpu-box', 'us', 'cuda:0', 1);
    const localCpu = pool('local', 'eu', 'cpu', 4);
    const placed = placeReplicas({ count: 2, devicePreference: ['cuda:0', 'cpu'], regionPreference: ['eu'] }, [localCpu, remoteGpu]);
    assert.deepEqual(where(placed), ['gpu-box/cuda:0', 'local/cpu']);
  });

  test('local and remote pools are one list; equal room breaks ties in list order', () => {
    const local = pool('local', 'eu', 'cpu', 2);
    const remote = pool('node-b', 'eu', 'cpu', 2);
    assert.deepEqual(where(placeReplicas({ count: 4, devicePreference: ['cpu'] }, [local, remote])), ['local/cpu', 'node-b/cpu', 'local/cpu', 'node-b/cpu']);
  });

  test('places fewer than asked when room runs out, and returns the candidate objects', () => {
    const a = pool('local', 'local', 'cpu', 1);
    const b = pool('local', 'local', 'cuda:0', 1);
    const placed = placeReplicas({ count: 5, devicePreference: ['cuda:0', 'cpu', 'coreml'] }, [a, b]);
    assert.equal(placed.length, 2);
    assert.equal(placed[0], b);
    assert.equal(placed[1], a);
    assert.equal(a.free, 1, 'candidates are not mutated');
    assert.deepEqual(placeReplicas({ count: 3, devicePreference: ['coreml'] }, [a, b]), []);
    assert.deepEqual(placeReplicas({ count: 0, devicePreference: ['cpu'] }, [a]), []);
  });

  test('a pool with no room or a fractional slot count never takes a replica beyond its whole slots', () => {
    const placed = placeReplicas({ count: 4, devicePreference: ['cpu'] }, [pool('x', 'r', 'cpu', 1.9), pool('y', 'r', 'cpu', -2)]);
    assert.deepEqual(where(placed), ['x/cpu']);
  });

  test('a count that is not a non-negative integer is refused with SY_INTERNAL', () => {
    for (const count of [-1, 1.5, Number.NaN]) {
      assert.throws(
        () => placeReplicas({ count, devicePreference: ['cpu'] }, []),
        (err: unknown) => err instanceof SwitchyardError && err.code === 'SY_INTERNAL' && /count/.test(err.message),
      );
    }
  });
});
