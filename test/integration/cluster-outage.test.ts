/**
 * The gateway loses its NATS connection (the real nats-server is killed): requests that only node
 * agents could serve are answered 503 SY_CLUSTER_UNAVAILABLE with Retry-After instead of waiting
 * out their deadline, the request in flight on a node is answered the same way, local replicas
 * keep serving, the loss and the return are counted in /metrics, and service resumes. With a
 * second server listed that never answers, the gateway waits `failover_grace_ms` for a failover
 * that cannot happen, then answers the same 503s.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
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

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('NATS outage with a second server listed that is down too', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-failover-grace-'));
  let server: NatsServer;
  let gw: TestGateway;

  before(async () => {
    const behaviours = fixtureModule('behaviours', dir);
    server = await NatsServer.start();
    const node = startNodeAgent({ nats: server.url, name: 'n1', region: 'eu', maxReplicas: 1, workDir: dir });
    await node.up;
    gw = await startClusterGateway({
      nats: `${server.url},nats://127.0.0.1:${await deadPort()}`,
      region: 'eu',
      cluster: { failover_grace_ms: 500 },
      endpoints: { far: { predictor: behaviours, placement: 'remote', timeout_ms: 60_000 } },
    });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds requests while it tries to fail over, then answers them 503 instead of waiting out their deadline', async () => {
    const inFlight = postJson(`${gw.url}/inference/far`, { action: 'sleep', ms: 30_000 });
    await waitFor('the request to reach the node', () => gw.gateway.endpoints.get('far')!.inFlight === 1);
    await server.stop();
    // Sent while the failover is being tried: it waits for it, then gets the outage.
    const waiting = postJson(`${gw.url}/inference/far`, { value: 1 });
    for (const res of [await inFlight, await waiting]) {
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json.error.code, 'SY_CLUSTER_UNAVAILABLE');
    }
  });
});
