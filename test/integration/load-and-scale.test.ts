import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fixture, startGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

async function call(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe('load', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        b: { predictor: fixture('behaviours'), replicas: 2, max_concurrency: 64, max_queue: 5000 },
        scaled: { predictor: fixture('behaviours'), replicas: 1, max_concurrency: 8, max_queue: 5000 },
      },
    });
  });
  after(async () => {
    await gw.close();
  });

  test('2,000 concurrent requests are all answered, each with its own answer', async () => {
    const n = 2000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => call(`${gw.url}/inference/b`, { action: 'echo', value: { i, s: `req-${i}` } })));
    const wrong = results.filter((r, i) => r.status !== 200 || r.json.echo.i !== i || r.json.echo.s !== `req-${i}`);
    assert.equal(wrong.length, 0, `wrong answers: ${JSON.stringify(wrong.slice(0, 3))}`);
    const replicas = new Set(results.map((r) => r.json.replica));
    assert.equal(replicas.size, 2, 'both replicas served');
    assert.equal(gw.gateway.endpoints.get('b')!.inFlight, 0);
  });

  test('changing the replica count under load fails no request', async () => {
    const ep = gw.gateway.endpoints.get('scaled')!;
    let stop = false;
    const statuses: number[] = [];
    const servedBy = new Set<string>();
    const client = async () => {
      while (!stop) {
        const r = await call(`${gw.url}/inference/scaled`, { action: 'sleep', ms: 5 });
        statuses.push(r.status);
        if (r.json?.replica) servedBy.add(r.json.replica);
      }
    };
    const clients = Array.from({ length: 32 }, client);
    ep.scaleTo(4, 'test');
    await waitFor(() => ep.readyCount === 4, 15_000, '4 ready replicas');
    await waitFor(() => servedBy.size >= 4, 10_000, 'traffic on the new replicas');
    ep.scaleTo(1, 'test');
    await waitFor(() => ep.replicas.length === 1, 15_000, 'drained down to 1');
    ep.scaleTo(2, 'test');
    await waitFor(() => ep.readyCount === 2, 15_000, '2 ready replicas');
    stop = true;
    await Promise.all(clients);
    assert.ok(statuses.length > 100, `enough traffic (${statuses.length})`);
    assert.deepEqual([...new Set(statuses)], [200]);
  });
});
