import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixture, postJson, startGateway, waitFor } from '../helpers/gateway.js';

const knobs = {
  min_replicas: 1,
  max_replicas: 4,
  target_concurrency_per_replica: 2,
  window_size_secs: 1,
  scaledown_delay_secs: 1,
  panic_window_secs: 0.3,
  tick_ms: 100,
};

describe('autoscaling on real threads', () => {
  test('a load step raises 1 replica to at least 3, and back to min_replicas after the delay; nothing fails', async () => {
    const gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), replicas: 1, max_concurrency: 4, autoscaling: knobs } } });
    try {
      const ep = gw.gateway.endpoints.get('b')!;
      assert.equal(ep.readyCount, 1);
      let stop = false;
      const statuses: number[] = [];
      let peak = 0;
      const client = async () => {
        while (!stop) {
          const r = await postJson(`${gw.url}/inference/b`, { action: 'sleep', ms: 40 });
          statuses.push(r.status);
          peak = Math.max(peak, ep.readyCount);
        }
      };
      const clients = Array.from({ length: 16 }, client);
      await waitFor(() => ep.readyCount >= 3, 10_000, 'at least 3 ready replicas');
      stop = true;
      await Promise.all(clients);
      await waitFor(() => ep.replicas.length === 1 && ep.desired === 1, 15_000, 'back to min_replicas');
      assert.ok(peak >= 3, `peak ${peak}`);
      assert.deepEqual([...new Set(statuses)], [200]);
      const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
      const decisions = listing.endpoints[0].autoscaling.decisions.filter((d: any) => d.applied);
      assert.ok(decisions.some((d: any) => d.desired >= 3 && /scale_up|panic/.test(d.reason)), JSON.stringify(decisions));
      assert.ok(decisions.some((d: any) => d.reason === 'scale_down'), JSON.stringify(decisions));
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      assert.match(metrics, /switchyard_autoscaler_decisions_total\{endpoint="b",reason="scale_down"\} [1-9]/);
    } finally {
      await gw.close();
    }
  });

  test('from zero: the first request waits for a replica and is served', async () => {
    const gw = await startGateway({
      endpoints: { z: { predictor: fixture('behaviours'), replicas: 0, autoscaling: { ...knobs, min_replicas: 0, scaledown_delay_secs: 60 } } },
    });
    try {
      const ep = gw.gateway.endpoints.get('z')!;
      assert.equal(ep.replicas.length, 0);
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200, 'an endpoint allowed to sit at zero is ready');
      const res = await postJson(`${gw.url}/inference/z`, { value: 'cold' });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.echo, 'cold');
      assert.equal(ep.readyCount, 1);
    } finally {
      await gw.close();
    }
  });

  test('back to zero after the delay, and up again on demand', async () => {
    const gw = await startGateway({
      endpoints: { z: { predictor: fixture('behaviours'), replicas: 1, autoscaling: { ...knobs, min_replicas: 0, scaledown_delay_secs: 0.5, window_size_secs: 0.5 } } },
    });
    try {
      const ep = gw.gateway.endpoints.get('z')!;
      await waitFor(() => ep.replicas.length === 0, 10_000, 'scale to zero when idle');
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => postJson(`${gw.url}/inference/z`, { value: i })));
      assert.deepEqual(burst.map((r) => r.status), Array(20).fill(200));
      assert.deepEqual(burst.map((r) => r.json.echo), Array.from({ length: 20 }, (_, i) => i));
    } finally {
      await gw.close();
    }
  });

  test('scale-down drains: requests in flight on removed replicas all finish', async () => {
    const gw = await startGateway({ endpoints: { d: { predictor: fixture('behaviours'), replicas: 3, max_concurrency: 4 } } });
    try {
      const ep = gw.gateway.endpoints.get('d')!;
      const inFlight = Array.from({ length: 12 }, (_, i) => postJson(`${gw.url}/inference/d`, { action: 'sleep', ms: 600, value: i }));
      await waitFor(() => ep.inFlight === 12, 5000, 'twelve in flight on three replicas');
      ep.scaleTo(1, 'test');
      assert.equal(ep.replicas.filter((r) => r.state === 'draining').length, 2, 'two replicas draining, not killed');
      const results = await Promise.all(inFlight);
      assert.deepEqual(results.map((r) => r.status), Array(12).fill(200));
      assert.equal(new Set(results.map((r) => r.json.replica)).size, 3, 'the draining replicas finished their own requests');
      await waitFor(() => ep.replicas.length === 1, 5000, 'drained replicas removed');
    } finally {
      await gw.close();
    }
  });
});
