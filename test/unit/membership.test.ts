import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Membership, timingsFromConfig, validateTimings, type MembershipEvent } from '../../gateway/cluster/membership.js';
import { validateConfig } from '../../gateway/config/load.js';
import type { NodeAnnounce, NodeHeartbeat } from '../../workers/cluster/subjects.js';

function announce(name: string, incarnation: string, region = 'eu'): NodeAnnounce {
  return {
    name,
    incarnation,
    region,
    devices: [{ id: 'cpu', kind: 'cpu', name: 'test cpu', memoryBytes: 1 << 30, cores: 4 }],
    maxReplicas: 4,
    heartbeatIntervalMs: 250,
  };
}

function beat(name: string, incarnation: string, extra: Partial<NodeHeartbeat> = {}): NodeHeartbeat {
  return { name, incarnation, seq: 1, inFlight: {}, draining: false, ...extra };
}

const types = (events: MembershipEvent[]) => events.map((e) => e.type);

describe('Membership', () => {
  it('admits an announced node as alive and routable', () => {
    const m = new Membership();
    const events = m.announce(announce('a', 'i1'), 0);
    assert.deepEqual(types(events), ['joined']);
    assert.equal(m.get('a')?.state, 'alive');
    assert.equal(m.isRoutable('a'), true);
    assert.equal(m.isRoutable('a', 'other'), false);
  });

  it('reports a node that reconnected to NATS once, whether its announce or a heartbeat says so first', () => {
    const m = new Membership();
    m.announce({ ...announce('a', 'i1'), connection: 1 }, 0);
    assert.deepEqual(m.heartbeat(beat('a', 'i1', { connection: 1 }), 100), []);
    assert.deepEqual(m.heartbeat(beat('a', 'i1', { connection: 2 }), 200), [{ type: 'reconnected', name: 'a', incarnation: 'i1' }]);
    assert.deepEqual(types(m.announce({ ...announce('a', 'i1'), connection: 2 }, 250)), [], 'the same reconnection is reported once');
    assert.deepEqual(types(m.announce({ ...announce('a', 'i1'), connection: 3 }, 300)), ['reconnected']);
    // A heartbeat sent before the reconnection and delivered after it says nothing new.
    assert.deepEqual(m.heartbeat(beat('a', 'i1', { connection: 2 }), 350), []);
    // Nodes that do not count their connections never report one.
    assert.deepEqual(m.heartbeat(beat('a', 'i1'), 400), []);
    assert.equal(m.get('a')?.connection, 3);
  });

  it('keeps a node alive while heartbeats arrive within the interval', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    for (let t = 250; t <= 10_000; t += 250) {
      assert.deepEqual(m.heartbeat(beat('a', 'i1'), t), []);
      assert.deepEqual(m.tick(t + 100), []);
    }
    assert.equal(m.get('a')?.state, 'alive');
  });

  it('suspects after three missed heartbeats, then buries after the dead timeout', () => {
    const m = new Membership({ heartbeatIntervalMs: 250, suspectAfterMissed: 3, deadAfterMs: 1_000 });
    m.announce(announce('a', 'i1'), 0);
    assert.deepEqual(m.tick(700), []);
    assert.deepEqual(m.tick(800), [{ type: 'suspect', name: 'a', incarnation: 'i1' }]);
    assert.equal(m.isRoutable('a'), false);
    assert.deepEqual(m.tick(900), [], 'suspect is reported once');
    assert.deepEqual(m.tick(1_001), [{ type: 'dead', name: 'a', incarnation: 'i1', reason: 'timeout' }]);
    assert.equal(m.get('a'), undefined);
    assert.deepEqual(m.tick(5_000), [], 'dead is reported once');
  });

  it('recovers a suspect node that heartbeats again', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    m.tick(800);
    assert.deepEqual(m.heartbeat(beat('a', 'i1'), 900), [{ type: 'recovered', name: 'a', incarnation: 'i1' }]);
    assert.equal(m.isRoutable('a'), true);
    assert.deepEqual(m.tick(1_500), [], 'the death clock restarted at the heartbeat');
  });

  it('treats a node back after death as stale until it reincarnates', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    m.tick(2_000);
    assert.deepEqual(m.heartbeat(beat('a', 'i1'), 2_100), [{ type: 'stale', name: 'a', incarnation: 'i1' }]);
    assert.deepEqual(m.announce(announce('a', 'i1'), 2_100), [{ type: 'stale', name: 'a', incarnation: 'i1' }]);
    assert.equal(m.get('a'), undefined);
    const events = m.announce(announce('a', 'i2'), 2_200);
    assert.deepEqual(types(events), ['joined']);
    assert.equal(m.get('a')?.incarnation, 'i2');
  });

  it('buries the old incarnation when a restarted node announces a new one', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    const events = m.announce(announce('a', 'i2'), 100);
    assert.deepEqual(events[0], { type: 'dead', name: 'a', incarnation: 'i1', reason: 'replaced' });
    assert.equal(events[1]?.type, 'joined');
    assert.equal(m.isBuried('a', 'i1'), true);
  });

  it('asks for an announce when a heartbeat comes from an unseen incarnation', () => {
    const m = new Membership();
    assert.deepEqual(m.heartbeat(beat('b', 'x'), 0), [{ type: 'unknown', name: 'b', incarnation: 'x' }]);
    m.announce(announce('b', 'x'), 10);
    assert.deepEqual(m.heartbeat(beat('b', 'y'), 20), [{ type: 'unknown', name: 'b', incarnation: 'y' }]);
  });

  it('reports draining once and keeps the node out of rotation until it leaves', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    assert.deepEqual(m.heartbeat(beat('a', 'i1', { draining: true }), 100), [{ type: 'draining', name: 'a', incarnation: 'i1' }]);
    assert.deepEqual(m.heartbeat(beat('a', 'i1', { draining: true }), 200), []);
    assert.equal(m.isRoutable('a'), false);
    assert.equal(m.get('a')?.state, 'alive', 'a draining node still finishes its work');
    assert.deepEqual(m.leave({ name: 'a', incarnation: 'other' }), []);
    assert.deepEqual(m.leave({ name: 'a', incarnation: 'i1' }), [{ type: 'dead', name: 'a', incarnation: 'i1', reason: 'left' }]);
  });

  it('records the load each heartbeat carries', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    m.heartbeat(beat('a', 'i1', { inFlight: { k1: 3, k2: 0 } }), 100);
    assert.deepEqual(m.get('a')?.inFlight, { k1: 3, k2: 0 });
  });

  it('restarts every clock when the observer itself was cut off', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1'), 0);
    m.resume(5_000);
    assert.deepEqual(m.tick(5_500), []);
    assert.deepEqual(types(m.tick(6_100)), ['dead']);
  });

  it('tracks nodes independently', () => {
    const m = new Membership();
    m.announce(announce('a', 'i1', 'eu'), 0);
    m.announce(announce('b', 'j1', 'us'), 0);
    m.heartbeat(beat('b', 'j1'), 900);
    assert.deepEqual(m.tick(1_100), [{ type: 'dead', name: 'a', incarnation: 'i1', reason: 'timeout' }]);
    assert.deepEqual(m.list().map((n) => [n.name, n.region]), [['b', 'us']]);
  });

  it('takes its timings from the cluster config section', () => {
    const config = validateConfig({ endpoints: {}, cluster: { nats: 'nats://127.0.0.1:4222', dead_after_ms: 2_000 } });
    assert.deepEqual(timingsFromConfig(config.cluster!), { heartbeatIntervalMs: 250, suspectAfterMissed: 3, deadAfterMs: 2_000 });
    assert.throws(() => validateConfig({ endpoints: {}, cluster: { nats: 'x', heartbeat_interval_ms: 400 } }), /dead_after_ms must be longer/);
  });

  it('refuses timings where death would come before suspicion', () => {
    assert.throws(() => validateTimings({ deadAfterMs: 500 }), /deadAfterMs/);
    assert.throws(() => validateTimings({ heartbeatIntervalMs: 0 }), /heartbeatIntervalMs/);
    assert.throws(() => validateTimings({ suspectAfterMissed: 1.5 }), /suspectAfterMissed/);
    assert.deepEqual(validateTimings(), { heartbeatIntervalMs: 250, suspectAfterMissed: 3, deadAfterMs: 1_000 });
  });
});
