import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../../bench/lib/processes.js';
import { measureSerial } from '../../bench/lib/serial-load.js';
import { isEchoOfHello } from '../../bench/scenarios/echo.js';

const rawUws = new URL('../../bench/baselines/raw-uws.js', import.meta.url).pathname;
let server: RunningServer;

before(async () => {
  server = await startServer({ command: process.execPath, args: (port) => [rawUws, String(port)], readyPath: '/readyz' });
});

after(async () => {
  await server?.stop();
});

test('one request at a time: every answer is counted and timed, percentiles ordered', async () => {
  const result = await measureSerial({ url: `${server.url}/inference/echo`, body: '{"text":"hello"}', durationS: 0.5, verifyBody: isEchoOfHello });
  assert.equal(result.connections, 1);
  assert.ok(result.requests > 0);
  assert.equal(result.errors.total, 0);
  assert.equal(result.latency.count, result.requests);
  assert.ok(result.latency.p50 > 0 && result.latency.p50 <= result.latency.p99 && result.latency.p99 <= result.latency.max, JSON.stringify(result.latency));
});

test('answers that are not 2xx, or not the expected body, are errors and not timed', async () => {
  const missing = await measureSerial({ url: `${server.url}/no/such/route`, durationS: 0.3 });
  assert.equal(missing.requests, 0);
  assert.ok((missing.errors.byStatus['404'] ?? 0) > 0, JSON.stringify(missing.errors));
  assert.equal(missing.latency.count, 0);
  const wrong = await measureSerial({ url: `${server.url}/inference/echo`, body: '{"text":"bye"}', durationS: 0.3, verifyBody: isEchoOfHello });
  assert.equal(wrong.requests, 0);
  assert.ok(wrong.errors.mismatches > 0);
});
