import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, postJson, repoRoot, startGateway, tempDir, waitFor } from '../helpers/gateway.js';

describe('replica lifecycle', () => {
  test('a replica thread that dies mid-request: the request is retried on another replica and the replica is replaced', async () => {
    const outputDir = tempDir();
    const gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), replicas: 2, output_dir: outputDir } } });
    try {
      const ep = gw.gateway.endpoints.get('b')!;
      const before = new Set(ep.replicas.map((r) => r.id));
      // Several requests in flight on both replicas, then one replica's thread exits.
      const sleepers = Array.from({ length: 8 }, (_, i) => postJson(`${gw.url}/inference/b`, { action: 'sleep', ms: 300, value: i }));
      await waitFor(() => ep.inFlight === 8, 5000, 'requests in flight');
      const crash = postJson(`${gw.url}/inference/b`, { action: 'exit_once', mark: 'm1' });
      const results = await Promise.all(sleepers);
      assert.deepEqual(results.map((r) => r.status), Array(8).fill(200), JSON.stringify(results.map((r) => r.json)));
      assert.deepEqual(results.map((r) => r.json.value), [0, 1, 2, 3, 4, 5, 6, 7]);
      const crashed = await crash;
      assert.equal(crashed.status, 200, crashed.text);
      assert.equal(crashed.json.survived, true);
      await waitFor(() => ep.readyCount === 2, 15_000, 'replacement replicas');
      assert.ok(ep.replicas.some((r) => !before.has(r.id)), 'a new replica replaced the dead one');
      assert.equal((await postJson(`${gw.url}/inference/b`, { value: 'after' })).json.echo, 'after');
    } finally {
      await gw.close();
    }
  });

  test('a request that kills every replica it reaches ends with SY_REPLICA_LOST after bounded retries', async () => {
    const gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), replicas: 1 } } });
    try {
      const res = await postJson(`${gw.url}/inference/b`, { action: 'exit' });
      assert.equal(res.status, 502);
      assert.equal(res.json.error.code, 'SY_REPLICA_LOST');
      await waitFor(() => gw.gateway.endpoints.get('b')!.readyCount === 1, 20_000, 'the endpoint to recover');
      assert.equal((await postJson(`${gw.url}/inference/b`, { value: 3 })).json.echo, 3);
    } finally {
      await gw.close();
    }
  });

  test('an uncaught exception in a replica thread is a lost replica, not a dead gateway', async () => {
    const gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), replicas: 1, idempotent: false } } });
    try {
      const res = await postJson(`${gw.url}/inference/b`, { action: 'crash' });
      // Not idempotent: no retry, a coded error.
      assert.equal(res.status, 502);
      assert.equal(res.json.error.code, 'SY_REPLICA_LOST');
      await waitFor(() => gw.gateway.endpoints.get('b')!.readyCount === 1, 15_000, 'a new replica');
      assert.equal((await postJson(`${gw.url}/inference/b`, { value: 2 })).json.echo, 2);
    } finally {
      await gw.close();
    }
  });

  test('a predictor whose setup fails: not ready, 503 SY_NO_REPLICA; the cause in /v1/endpoints', async () => {
    const gw = await startGateway({ endpoints: { bad: { predictor: fixture('behaviours'), settings: { fail_setup: 'weights file missing' } } } }, { ready: false });
    try {
      const ep = gw.gateway.endpoints.get('bad')!;
      await waitFor(() => ep.lastStartError !== undefined, 10_000, 'the setup failure');
      const ready = await fetch(`${gw.url}/readyz`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as any;
      assert.ok(body.endpoints.bad.start_failures >= 1);
      const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
      assert.match(listing.endpoints[0].last_start_error, /setup\(\) failed: weights file missing/);
      const res = await postJson(`${gw.url}/inference/bad`, {}, { 'x-request-timeout-ms': '2000' });
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, 'SY_NO_REPLICA');
    } finally {
      await gw.close();
    }
  });

  test('a predictor module that does not exist fails at setup with its path', async () => {
    const gw = await startGateway({ endpoints: { gone: { predictor: '/nonexistent/predictor.js' } } }, { ready: false });
    try {
      const ep = gw.gateway.endpoints.get('gone')!;
      await waitFor(() => ep.lastStartError !== undefined, 10_000, 'the load failure');
      assert.match(ep.lastStartError!, /cannot load predictor \/nonexistent\/predictor\.js/);
    } finally {
      await gw.close();
    }
  });
});

describe('SIGTERM', () => {
  test('stops accepting, finishes requests in flight, exits 0', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'switchyard.yaml');
    writeFileSync(config, `server:\n  host: 127.0.0.1\n  log_level: warn\nendpoints:\n  b:\n    predictor: ${fixture('behaviours')}\n    replicas: 2\n`);
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/gateway/cli/main.js'), 'serve', '--config', config, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout! });
    let url = '';
    for await (const line of lines) {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) url = m[1]!;
      if (line.startsWith('ready:')) break;
    }
    assert.ok(url, 'the gateway printed where it listens');
    const inFlight = Array.from({ length: 10 }, (_, i) => postJson(`${url}/inference/b`, { action: 'sleep', ms: 700, value: i }));
    await new Promise((r) => setTimeout(r, 200));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const results = await Promise.all(inFlight);
    assert.deepEqual(results.map((r) => r.status), Array(10).fill(200));
    assert.deepEqual(results.map((r) => r.json.value), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const [code] = await exited;
    assert.equal(code, 0);
    await assert.rejects(fetch(`${url}/healthz`), 'the port is closed after exit');
  });

  test('the start-up line names the address bound; open WebSockets close with 1001', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'switchyard.yaml');
    // No host: the default, every interface.
    writeFileSync(config, `server:\n  log_level: warn\nendpoints:\n  b:\n    predictor: ${fixture('behaviours')}\n`);
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/gateway/cli/main.js'), 'serve', '--config', config, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = once(child, 'exit');
    let listening = '';
    for await (const line of createInterface({ input: child.stdout! })) {
      if (line.includes('listening on')) listening = line;
      if (line.startsWith('ready:')) break;
    }
    const m = /^switchyard listening on http:\/\/0\.0\.0\.0:(\d+) \(every interface; from this machine: (http:\/\/127\.0\.0\.1:(\d+))\)$/.exec(listening);
    assert.ok(m, `the line names the address bound: ${listening}`);
    assert.equal(m[1], m[3]);
    const ws = new WebSocket(`${m[2]!.replace('http', 'ws')}/inference/b`);
    await once(ws, 'open');
    const closed = once(ws, 'close');
    child.kill('SIGTERM');
    const [code, reason] = (await closed) as [number, Buffer];
    assert.equal(code, 1001, `closed with ${code} ${reason.toString()}`);
    assert.equal((await exited)[0], 0);
  });
});
