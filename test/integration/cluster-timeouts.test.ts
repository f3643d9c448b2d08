/**
 * A replica on a node agent whose request runs past its deadline: the client gets a 504 that says
 * where it ran, and the time the request held the replica counts in the latency routing scores, so
 * a remote replica that stops answering never looks fast.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixtureModule, killChildren, startClusterGateway, startNodeAgent } from '../helpers/cluster.js';
import { postJson, type TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

describe('timeouts on node agents', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-timeouts-'));
  let server: NatsServer;
  let gw: TestGateway;

  before(async () => {
    const behaviours = fixtureModule('behaviours', dir);
    server = await NatsServer.start();
    const node = startNodeAgent({ nats: server.url, name: 'n1', region: 'eu', workDir: dir });
    await node.up;
    gw = await startClusterGateway({ nats: server.url, region: 'eu', endpoints: { r: { predictor: behaviours, placement: 'remote' } } });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a request that timed out on a remote replica raises that replica latency', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await postJson(`${gw.url}/inference/r`, { value: i })).status, 200);
    const latency = () => gw.gateway.endpoints.get('r')!.replicas[0]!.latencyMs;
    const before = latency();
    const res = await postJson(`${gw.url}/inference/r`, { action: 'sleep', ms: 10_000 }, { 'x-request-timeout-ms': '400' });
    assert.equal(res.status, 504);
    assert.equal(res.json.error.code, 'SY_DEADLINE_EXCEEDED');
    assert.match(res.json.error.message, /while running on replica r@n1\/\S+; the replica was told to stop the work$/);
    // One 400 ms sample in an average with weight 0.1 adds at least 0.1 × (400 - before) ms.
    assert.ok(latency() >= before + 0.1 * (400 - before) - 1, `latency ${before} → ${latency()} ms`);
  });
});
