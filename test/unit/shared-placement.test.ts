import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeMember } from '../../gateway/cluster/membership.js';
import { chooseSharedReplicas, type SharedPlacementInput } from '../../gateway/federation/shared-placement.js';

function node(name: string, region: string, maxReplicas: number, inFlight: Record<string, number> = {}, devices = ['cpu']): NodeMember {
  return {
    name,
    region,
    incarnation: `${name}-i`,
    devices: devices.map((id) => ({ id, kind: id === 'cpu' ? 'cpu' : 'cuda', name: id, memoryBytes: 1 << 30, ...(id === 'cuda:0' ? { onnx: false } : {}) })),
    maxReplicas,
    state: 'alive',
    draining: false,
    lastSeenAt: 0,
    inFlight,
    connection: 1,
  };
}

function input(fields: Partial<SharedPlacementInput>): SharedPlacementInput {
  let n = 0;
  return {
    endpoint: 'e',
    version: 'v1',
    config: { devices: ['cpu'], regions: [] },
    count: 1,
    nodes: [],
    occupied: () => new Set(),
    newKey: () => `key-00000${++n}`,
    now: 42,
    ...fields,
  };
}

describe('chooseSharedReplicas', () => {
  it('spreads replicas over nodes with room, as starting entries of the current version', () => {
    const chosen = chooseSharedReplicas(input({ count: 2, nodes: [node('a', 'eu', 2), node('b', 'eu', 2)] }));
    assert.deepEqual(chosen.map((r) => r.node).sort(), ['a', 'b']);
    assert.deepEqual(chosen[0], {
      key: 'key-000001',
      replicaId: `e@${chosen[0]!.node}/cpu/000001`,
      node: chosen[0]!.node,
      incarnation: `${chosen[0]!.node}-i`,
      device: 'cpu',
      region: 'eu',
      version: 'v1',
      state: 'starting',
      since: 42,
    });
  });

  it("counts a node's room over its heartbeats and every record, and stops when room runs out", () => {
    // a: one slot, held by a replica of another endpoint whose record says so (not yet in a heartbeat);
    // b: two slots, one in its heartbeat.
    const nodes = [node('a', 'eu', 1), node('b', 'eu', 2, { hb: 0 })];
    const chosen = chooseSharedReplicas(input({ count: 3, nodes, occupied: (n) => new Set(n === 'a' ? ['other'] : []) }));
    assert.deepEqual(chosen.map((r) => r.node), ['b']);
  });

  it('prefers the endpoint regions and devices in order, and skips devices that cannot run its model', () => {
    const nodes = [node('eu-1', 'eu', 4), node('us-1', 'us', 4, {}, ['cpu', 'cuda:0'])];
    assert.deepEqual(chooseSharedReplicas(input({ config: { devices: ['cpu'], regions: ['us'] }, nodes })).map((r) => r.node), ['us-1']);
    const gpu = chooseSharedReplicas(input({ config: { devices: ['cuda:0', 'cpu'], regions: [] }, nodes }));
    assert.deepEqual(gpu.map((r) => `${r.node}/${r.device}`), ['us-1/cuda:0']);
    // The same endpoint with an ONNX model: that CUDA device's provider does not load, so CPU.
    const onnx = chooseSharedReplicas(input({ config: { devices: ['cuda:0', 'cpu'], regions: [], model: '/m.onnx' }, nodes }));
    assert.equal(onnx[0]!.device, 'cpu');
  });
});
