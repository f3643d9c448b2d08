/**
 * Bad predictors on real threads: one stuck in synchronous code, one that kills its thread on every
 * request, one whose setup always fails, one that leaks a rejected promise. Each must cost the
 * endpoint as little as possible, and clients must get a coded answer at once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixture, postJson, startGateway, waitFor } from '../helpers/gateway.js';

const getJson = async (url: string): Promise<any> => (await fetch(url)).json();
const metric = async (url: string, line: RegExp): Promise<number> => {
  const m = line.exec(await (await fetch(`${url}/metrics`)).text());
  return m ? Number(m[1]) : 0;
};

describe('replica faults', () => {
  test('a replica stuck in a loop is terminated and replaced; its other requests are retried; the next requests all succeed', async () => {
    const gw = await startGateway({ endpoints: { w: { predictor: fixture('behaviours'), replicas: 2, abort_grace_ms: 300 } } });
    try {
      const ep = gw.gateway.endpoints.get('w')!;
      const before = new Set(ep.replicas.map((r) => r.id));
      const spun = await postJson(`${gw.url}/inference/w`, { action: 'spin' }, { 'x-request-timeout-ms': '500' });
      assert.equal(spun.status, 504);
      assert.equal(spun.json.error.code, 'SY_DEADLINE_EXCEEDED');
      assert.match(spun.json.error.message, /passed its deadline while running on replica w\/cpu\/\d+; the replica was told to stop the work and is replaced if it does not within 300 ms/);

      await waitFor(async () => (await getJson(`${gw.url}/readyz`)).endpoints.w.replaced.wedged === 1, 10_000, 'the wedged replica to be counted');
      await waitFor(() => ep.readyCount === 2 && ep.replicas.every((r) => r.state === 'ready'), 15_000, 'a replacement replica');
      assert.equal(ep.replicas.filter((r) => before.has(r.id)).length, 1, 'exactly one replica was replaced');
      const listing = await getJson(`${gw.url}/v1/endpoints`);
      assert.deepEqual(listing.endpoints[0].replaced, { lost: 0, wedged: 1 });
      assert.equal(await metric(gw.url, /switchyard_replica_replacements_total\{endpoint="w",reason="wedged"\} (\d+)/), 1);

      // The stuck replica does not keep taking work: every request after it succeeds.
      const next = await Promise.all(Array.from({ length: 20 }, (_, i) => postJson(`${gw.url}/inference/w`, { value: i }, { 'x-request-timeout-ms': '5000' })));
      assert.deepEqual(
        next.map((r) => r.status),
        Array(20).fill(200),
        JSON.stringify(next.filter((r) => r.status !== 200).map((r) => r.json)),
      );
    } finally {
      await gw.close();
    }
  });

  test('requests sharing a wedged replica are retried on its replacement', async () => {
    const gw = await startGateway({ endpoints: { w: { predictor: fixture('behaviours'), replicas: 1, abort_grace_ms: 300 } } });
    try {
      const first = gw.gateway.endpoints.get('w')!.replicas[0]!.id;
      const spin = postJson(`${gw.url}/inference/w`, { action: 'spin' }, { 'x-request-timeout-ms': '500' });
      const bystander = postJson(`${gw.url}/inference/w`, { value: 'bystander' }, { 'x-request-timeout-ms': '20000' });
      assert.equal((await spin).status, 504);
      const res = await bystander;
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.echo, 'bystander');
      assert.notEqual(res.json.replica, first, 'it ran on the replacement');
    } finally {
      await gw.close();
    }
  });

  test('a replica that keeps dying: restarts back off and requests are answered 503 + Retry-After instead of starting a thread each', async () => {
    const gw = await startGateway({ endpoints: { c: { predictor: fixture('behaviours'), replicas: 1 } } });
    try {
      const statuses: number[] = [];
      let refused: Awaited<ReturnType<typeof postJson>> | undefined;
      for (let i = 0; i < 12; i++) {
        const res = await postJson(`${gw.url}/inference/c`, { action: 'exit' }, { 'x-request-timeout-ms': '20000' });
        statuses.push(res.status);
        if (res.status === 503) refused = res;
      }
      assert.ok(refused, `no request was refused while restarts back off: ${statuses.join(' ')}`);
      assert.equal(refused.json.error.code, 'SY_NO_REPLICA');
      assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After is set');
      const replaced = (await getJson(`${gw.url}/readyz`)).endpoints.c.replaced.lost;
      assert.ok(replaced < 12, `${replaced} threads died for 12 requests: one per request or more`);
      assert.ok(statuses.every((s) => s === 502 || s === 503), statuses.join(' '));
    } finally {
      await gw.close();
    }
  });

  test('a predictor whose setup always fails: 503 + Retry-After with a generic message; the cause only in /v1/endpoints', async () => {
    const gw = await startGateway({ endpoints: { bad: { predictor: fixture('behaviours'), settings: { fail_setup: 'cannot open /secret/weights.bin' } } } }, { ready: false });
    try {
      const ep = gw.gateway.endpoints.get('bad')!;
      await waitFor(() => ep.lastStartError !== undefined, 10_000, 'the setup failure');
      const res = await postJson(`${gw.url}/inference/bad`, {}, { 'x-request-timeout-ms': '20000' });
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, 'SY_NO_REPLICA');
      assert.ok(Number(res.headers.get('retry-after')) >= 1, 'Retry-After is set');
      assert.doesNotMatch(res.text, /secret|weights/);
      const ready = await fetch(`${gw.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.doesNotMatch(await ready.text(), /secret|weights/);
      const listing = await getJson(`${gw.url}/v1/endpoints`);
      assert.match(listing.endpoints[0].last_start_error, /setup\(\) failed: cannot open \/secret\/weights\.bin/);
    } finally {
      await gw.close();
    }
  });

  test('a promise the predictor leaves rejected is logged and counted; other requests on the replica are unaffected', async () => {
    const gw = await startGateway({ endpoints: { l: { predictor: fixture('behaviours'), replicas: 1, idempotent: false } } });
    try {
      const first = gw.gateway.endpoints.get('l')!.replicas[0]!.id;
      const sleeper = postJson(`${gw.url}/inference/l`, { action: 'sleep', ms: 400, value: 'sleeper' });
      const leak = await postJson(`${gw.url}/inference/l`, { action: 'leak' });
      assert.equal(leak.status, 200, leak.text);
      const slept = await sleeper;
      assert.equal(slept.status, 200, slept.text);
      assert.equal(slept.json.replica, first);
      await waitFor(async () => (await metric(gw.url, /switchyard_predictor_unhandled_rejections_total\{endpoint="l"\} (\d+)/)) === 1, 5_000, 'the rejection to be counted');
      assert.equal((await postJson(`${gw.url}/inference/l`, { value: 1 })).json.replica, first, 'the same replica still serves');
    } finally {
      await gw.close();
    }
  });
});
