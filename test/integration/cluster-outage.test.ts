/**
 * The gateway loses its NATS connection (the real nats-server is killed): requests that only node
 * agents could serve are answered 503 SY_CLUSTER_UNAVAILABLE with Retry-After instead of waiting
 * out their deadline, the request in flight on a node is answered the same way, local replicas
 * keep serving, the loss and the return are counted in /metrics, and service resumes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixtureModule, killChildren, startClusterGateway, startNodeAgent, waitFor } from '../helpers/cluster.js';
import { postJson, type TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

const metric = async (url: string, line: string): Promise<number | undefined> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
};

describe('NATS outage', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-outage-'));
  let server: NatsServer;
  let gw: TestGateway;

  before(async () => {
    const behaviours = fixtureModule('behaviours', dir);
    server = await NatsServer.start();
    const node = startNodeAgent({ nats: server.url, name: 'n1', region: 'eu', maxReplicas: 2, workDir: dir });
    await node.up;
    gw = await startClusterGateway({
      nats: server.url,
      region: 'eu',
      endpoints: {
        far: { predictor: behaviours, placement: 'remote', timeout_ms: 60_000 },
        near: { predictor: behaviours, placement: 'local' },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails remote-only requests fast with a coded 503, keeps local replicas serving, counts it, and recovers', async () => {
    assert.equal((await postJson(`${gw.url}/inference/far`, { value: 1 })).status, 200);
    assert.equal(await metric(gw.url, 'switchyard_cluster_connected'), 1);

    // In flight on the node when NATS goes: answered with the outage, not after its 60 s deadline.
    const inFlight = postJson(`${gw.url}/inference/far`, { action: 'sleep', ms: 30_000 });
    await waitFor('the request to reach the node', () => gw.gateway.endpoints.get('far')!.inFlight === 1);
    await server.stop();

    const lost = await inFlight;
    assert.equal(lost.status, 503);
    assert.equal(lost.json.error.code, 'SY_CLUSTER_UNAVAILABLE');

    const refused = await postJson(`${gw.url}/inference/far`, { value: 2 });
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error.code, 'SY_CLUSTER_UNAVAILABLE');
    assert.equal(refused.headers.get('retry-after'), '1');

    const local = await postJson(`${gw.url}/inference/near`, { value: 3 });
    assert.equal(local.status, 200, 'local replicas keep serving');

    assert.equal(await metric(gw.url, 'switchyard_cluster_connected'), 0);
    assert.equal(await metric(gw.url, 'switchyard_cluster_connection_events_total{event="disconnected"}'), 1);

    await server.restart();
    await waitFor('the gateway to reconnect', async () => (await metric(gw.url, 'switchyard_cluster_connected')) === 1, 30_000);
    assert.equal(await metric(gw.url, 'switchyard_cluster_connection_events_total{event="reconnected"}'), 1);
  });

  it('the node serves again after the outage', async () => {
    await waitFor('the node to serve again', async () => (await postJson(`${gw.url}/inference/far`, { value: 4 }, { 'x-request-timeout-ms': '3000' })).status === 200, 30_000);
  });
});
