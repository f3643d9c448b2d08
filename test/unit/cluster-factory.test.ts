import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterReplicaFactory, type ClusterView, type KeyedLink } from '../../gateway/cluster/cluster-factory.js';
import type { NodeMember } from '../../gateway/cluster/membership.js';
import { validateConfig } from '../../gateway/config/load.js';
import type { EndpointConfig } from '../../gateway/config/schema.js';
import type { DeviceInfo } from '../../native/devices.js';

const device = (id: string): DeviceInfo => ({ id, kind: id === 'cpu' ? 'cpu' : 'cuda', name: id, memoryBytes: 1 << 30 });

function member(name: string, region: string, devices: string[], maxReplicas: number, inFlight: Record<string, number> = {}): NodeMember {
  return { name, region, devices: devices.map(device), maxReplicas, inFlight, incarnation: `${name}-1`, state: 'alive', draining: false, lastSeenAt: 0, connection: 1 };
}

/** A cluster of plain data: links are records, nothing is started. */
class FakeCluster implements ClusterView {
  nodes: NodeMember[] = [];
  private seq = 0;
  routableNodes(): NodeMember[] {
    return this.nodes;
  }
  createLink(placement: Parameters<ClusterView['createLink']>[0]): KeyedLink {
    return { ...placement, key: `k${++this.seq}`, start: async () => undefined, send: () => undefined, control: () => undefined, stop: async () => undefined };
  }
}

function endpoint(fields: Record<string, unknown>): EndpointConfig {
  return validateConfig({ endpoints: { e: { predictor: '/p.js', ...fields } } }).endpoints.e!;
}

const where = (links: { node: string; device: string }[]) => links.map((l) => `${l.node}/${l.device}`);

describe('ClusterReplicaFactory', () => {
  it('puts ONNX endpoints only on devices whose onnxruntime provider loads; predictor modules anywhere', () => {
    const cluster = new FakeCluster();
    const gpu = member('gpu-box', 'eu', ['cuda:0'], 4);
    gpu.devices[0]!.onnx = false; // nvidia-smi sees the GPU, but the CUDA provider does not load
    const cpu = member('cpu-box', 'eu', ['cpu'], 4);
    cpu.devices[0]!.onnx = true;
    cluster.nodes = [gpu, cpu];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    const onnx = validateConfig({ endpoints: { m: { model: '/m.onnx', placement: 'remote', devices: ['cuda:0', 'cpu'] } } }).endpoints.m!;
    assert.deepEqual(where(factory.create('m', onnx, 1)), ['cpu-box/cpu']);
    assert.deepEqual(where(factory.create('e', endpoint({ placement: 'remote', devices: ['cuda:0', 'cpu'] }), 1)), ['gpu-box/cuda:0']);
  });


  it('places remote-only endpoints on nodes by device preference, then region, bounded per node over all its devices', () => {
    const cluster = new FakeCluster();
    cluster.nodes = [member('gpu-box', 'us', ['cpu', 'cuda:0'], 2), member('cpu-eu', 'eu', ['cpu'], 8)];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    const links = factory.create('e', endpoint({ placement: 'remote', devices: ['cuda:0', 'cpu'] }), 4);
    // The GPU first (device preference beats region), twice, which fills gpu-box: its cpu has no room left.
    assert.deepEqual(where(links), ['gpu-box/cuda:0', 'gpu-box/cuda:0', 'cpu-eu/cpu', 'cpu-eu/cpu']);
    assert.equal(factory.placedOn('gpu-box'), 2);
    assert.match(links[0]?.replicaId ?? '', /^e@gpu-box\/cuda:0\/\d+$/);
    assert.equal(links[2]?.region, 'eu');
  });

  it('prefers the endpoint regions, else the gateway region, and spreads over equal nodes', () => {
    const cluster = new FakeCluster();
    cluster.nodes = [member('eu-1', 'eu', ['cpu'], 4), member('eu-2', 'eu', ['cpu'], 4), member('us-1', 'us', ['cpu'], 4)];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    assert.deepEqual(where(factory.create('a', endpoint({ placement: 'remote' }), 2)).sort(), ['eu-1/cpu', 'eu-2/cpu']);
    assert.deepEqual(where(factory.create('b', endpoint({ placement: 'remote', regions: ['us'] }), 1)), ['us-1/cpu']);
  });

  it('counts replicas other gateways keep on a node, and frees a slot on release', () => {
    const cluster = new FakeCluster();
    cluster.nodes = [member('n', 'eu', ['cpu'], 2, { 'someone-else': 0 })];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    const config = endpoint({ placement: 'remote' });
    const [first, second] = factory.create('e', config, 2);
    assert.ok(first);
    assert.equal(second, undefined, 'one slot was taken by another gateway');
    assert.equal(factory.create('e', config, 1).length, 0);
    factory.released(first);
    assert.equal(factory.placedOn('n'), 0);
    assert.equal(factory.create('e', config, 1).length, 1);
  });

  it('keeps local endpoints on this machine and lets "any" use both', () => {
    const cluster = new FakeCluster();
    cluster.nodes = [member('far', 'us', ['cpu'], 4)];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    assert.deepEqual(where(factory.create('l', endpoint({ placement: 'local' }), 2)), ['local/cpu', 'local/cpu']);
    // The gateway's own pool stands in its region (eu): "any" prefers it to a node in us.
    assert.deepEqual(where(factory.create('a', endpoint({ placement: 'any' }), 1)), ['local/cpu']);
    assert.deepEqual(where(factory.create('a', endpoint({ placement: 'any', regions: ['us'] }), 1)), ['far/cpu']);
  });

  it('places nothing remotely when no node offers the device or none is routable', () => {
    const cluster = new FakeCluster();
    cluster.nodes = [member('cpu-only', 'eu', ['cpu'], 4)];
    const factory = new ClusterReplicaFactory({ cluster, region: 'eu', localDevices: [{ ...device('cpu'), onnx: true }] });
    assert.equal(factory.create('g', endpoint({ placement: 'remote', devices: ['cuda:0'] }), 1).length, 0);
    cluster.nodes = [];
    assert.equal(factory.create('c', endpoint({ placement: 'remote' }), 1).length, 0);
  });
});
