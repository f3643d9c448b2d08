import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignalHistory } from '../../gateway/autoscaler/signals.js';
import { LeaseWatch, planReplicaSet, type SharedReplica } from '../../gateway/federation/replica-set.js';
import { SignalAggregator } from '../../gateway/federation/signal-aggregator.js';

const replica = (key: string, state: SharedReplica['state'], version = 'v1', since = 0): SharedReplica => ({
  key,
  replicaId: `e@n/cpu/${key}`,
  node: 'n',
  incarnation: 'i',
  device: 'cpu',
  region: 'eu',
  version,
  state,
  since,
});

describe('planReplicaSet', () => {
  const all = () => true;

  it('starts what the current version lacks and forgets replicas gone from their node', () => {
    const plan = planReplicaSet({ desired: 3, version: 'v1', replicas: [replica('a', 'ready'), replica('b', 'ready')] }, (r) => r.key !== 'b');
    assert.deepEqual(plan, { start: 2, drain: [], forget: ['b'] });
  });

  it('drains the excess, starting ones first, then the youngest ready', () => {
    const plan = planReplicaSet({ desired: 1, version: 'v1', replicas: [replica('a', 'ready', 'v1', 1), replica('b', 'ready', 'v1', 5), replica('c', 'starting', 'v1', 2)] }, all);
    assert.deepEqual(plan, { start: 0, drain: ['c', 'b'], forget: [] });
  });

  it('keeps an old version serving until the new one is ready, then drains it all', () => {
    const rolling = { desired: 2, version: 'v2', replicas: [replica('a', 'ready', 'v1'), replica('b', 'ready', 'v1'), replica('c', 'ready', 'v2'), replica('d', 'starting', 'v2')] };
    assert.deepEqual(planReplicaSet(rolling, all), { start: 0, drain: [], forget: [] });
    rolling.replicas[3] = replica('d', 'ready', 'v2');
    assert.deepEqual(planReplicaSet(rolling, all), { start: 0, drain: ['a', 'b'], forget: [] });
  });

  it('starts the new version next to the old one, and never counts draining replicas', () => {
    const plan = planReplicaSet({ desired: 2, version: 'v2', replicas: [replica('a', 'ready', 'v1'), replica('b', 'draining', 'v2')] }, all);
    assert.deepEqual(plan, { start: 2, drain: [], forget: [] });
  });
});

describe('LeaseWatch', () => {
  it('expires a lease whose record stood still for the lease, on the local clock only', () => {
    const lease = new LeaseWatch(1000);
    assert.equal(lease.expired(0), false, 'nothing seen yet');
    lease.observe(5, 0);
    assert.equal(lease.expired(900), false);
    lease.observe(5, 900);
    assert.equal(lease.expired(1001), true, 'the same revision does not renew');
    lease.observe(6, 1001);
    assert.equal(lease.expired(1500), false);
  });
});

describe('SignalAggregator', () => {
  /** Feeds load `total(t)` split over `gateways` for 10 s of 250 ms reports; returns the window average a leader sees. */
  function observed(gateways: number, total: (t: number) => number): number {
    const agg = new SignalAggregator(1000);
    const history = SignalHistory.covering(3000, 200);
    const integrals = new Array<number>(gateways).fill(1e6); // counters start wherever each gateway's tracker is
    for (let t = 0; t <= 10_000; t += 250) {
      for (let g = 0; g < gateways; g++) {
        const share = total(t) / gateways;
        agg.report(`g${g}`, { integral: integrals[g]!, arrivals: t, inFlight: share, queued: 0 }, t);
        integrals[g]! += share * 250;
      }
      history.push(agg.signals(t, { ready: 1, starting: 0, draining: 0 }));
    }
    return history.averageConcurrency(3000, 10_000);
  }

  it('sees the same load whether it comes through one gateway or is split over three', () => {
    const load = (t: number) => (t < 5000 ? 4 : 12);
    const one = observed(1, load);
    const three = observed(3, load);
    assert.ok(Math.abs(one - 12) < 0.5, `one gateway: ${one}`);
    assert.ok(Math.abs(one - three) < 1e-9, `one ${one} vs three ${three}`);
  });

  it('adds no spike when a gateway joins and no drop when one leaves', () => {
    const agg = new SignalAggregator(1000);
    agg.report('a', { integral: 0, arrivals: 0, inFlight: 2, queued: 0 }, 0);
    agg.report('a', { integral: 500, arrivals: 10, inFlight: 2, queued: 0 }, 250);
    agg.report('b', { integral: 9e9, arrivals: 5e6, inFlight: 1, queued: 1 }, 250);
    const joined = agg.signals(250, { ready: 1, starting: 0, draining: 0 });
    assert.equal(joined.concurrencyIntegral, 500);
    assert.equal(joined.arrivals, 10);
    assert.equal(joined.inFlight + joined.queued, 4);
    agg.report('b', { integral: 9e9 + 500, arrivals: 5e6 + 3, inFlight: 2, queued: 0 }, 500);
    const left = agg.signals(5000, { ready: 1, starting: 0, draining: 0 });
    assert.equal(left.concurrencyIntegral, 1000, 'b keeps what it contributed');
    assert.equal(left.arrivals, 13);
    assert.equal(left.inFlight, 0, 'silent gateways carry no instant load');
  });
});
