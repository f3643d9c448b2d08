/**
 * An endpoint's life in a federation beyond steady serving: idle at zero replicas and brought back
 * by a request through any gateway (min_replicas 0), and removed from the deployment by a
 * `switchyard deploy` that leaves it out (its replicas drained and stopped on their nodes, its
 * record deleted, every gateway answering 404). Gateways, node agents and the CLI run as child
 * processes against a real nats-server with JetStream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { fixtureModule, killChildren, startNodeAgent, waitFor, type NodeAgentHandle } from '../helpers/cluster.js';
import { deploy, startFederatedGateway, status, type GatewayProcess } from '../helpers/federation.js';
import { postJson } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

describe('endpoints coming and going in a federation', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-federation-lifecycle-'));
  let server: NatsServer;
  let predictor: string;
  const nodes: NodeAgentHandle[] = [];
  const gateways: GatewayProcess[] = [];
  const idle = {
    autoscaling: { min_replicas: 0, max_replicas: 2, target_concurrency_per_replica: 2, window_size_secs: 1, scaledown_delay_secs: 1, tick_ms: 200 },
  };

  before(async () => {
    predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start();
    nodes.push(
      startNodeAgent({ nats: server.url, name: 'eu-1', region: 'eu', maxReplicas: 4, workDir: dir }),
      startNodeAgent({ nats: server.url, name: 'us-1', region: 'us', maxReplicas: 4, workDir: dir }),
    );
    await Promise.all(nodes.map((n) => n.up));
    await deploy(server.url, dir, { idle: { predictor, ...idle }, kept: { predictor, replicas: 1 }, gone: { predictor, replicas: 2 } });
    gateways.push(await startFederatedGateway(server.url, 'eu'), await startFederatedGateway(server.url, 'us'));
    await waitFor(
      'kept and gone to have their replicas ready',
      async () => {
        const s = await status(server.url);
        const ready = (name: string) => (s.endpoints[name]?.replicas ?? []).filter((r) => r.state === 'ready').length;
        return ready('kept') === 1 && ready('gone') === 2;
      },
      60_000,
    );
  });

  after(async () => {
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an idle endpoint with min_replicas 0 goes to zero, and a request through any gateway brings a replica up', async () => {
    for (const gw of gateways) {
      await waitFor(
        'idle to have no replica',
        async () => {
          const e = (await status(server.url)).endpoints.idle;
          return e?.desired === 0 && e.replicas.length === 0;
        },
        60_000,
      );
      // Leader or not, the gateway holds the request while the leader (seeing it in this
      // gateway's load) places a replica.
      const res = await postJson(`${gw.url}/inference/idle`, { value: gw.region }, { 'x-request-timeout-ms': '60000' });
      assert.equal(res.status, 200, res.text);
      assert.match(res.json.replica, /^idle@/);
      assert.equal(res.json.value, gw.region);
    }
  });

  it('an endpoint left out of a deploy is drained and stopped, its record deleted, and every gateway answers 404 for it', async () => {
    const before = (await status(server.url)).endpoints.gone!;
    assert.equal(before.replicas.length, 2);
    // Requests keep coming while it goes: each is answered, or refused 404 once the gateway let go of it.
    const statuses = new Map<number, number>();
    const codes = new Set<string>();
    let going = true;
    const lane = async (gw: GatewayProcess) => {
      while (going) {
        const res = await postJson(`${gw.url}/inference/gone`, { value: 'g' });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status !== 200) codes.add(res.json?.error?.code);
        if (res.status === 404) return;
      }
    };
    const lanes = Promise.all(gateways.flatMap((gw) => [lane(gw), lane(gw)]));
    try {
      await deploy(server.url, dir, { idle: { predictor, ...idle }, kept: { predictor, replicas: 1 } }, 'app-without-gone.yaml');
      await waitFor('every gateway to answer 404 for gone', async () => {
        const answers = await Promise.all(gateways.map((gw) => postJson(`${gw.url}/inference/gone`, { value: 'x' })));
        return answers.every((a) => a.status === 404 && a.json.error.code === 'SY_NOT_FOUND');
      }, 30_000);
    } finally {
      going = false;
      await lanes;
    }
    assert.ok((statuses.get(200) ?? 0) > 0, 'it served until it went');
    assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 404), [], `statuses seen: ${JSON.stringify([...statuses])}`);
    assert.deepEqual([...codes], ['SY_NOT_FOUND']);

    // Each of its replicas was stopped on its node, and the record that listed them is gone.
    await waitFor('both replicas of gone to be stopped on their nodes', () => before.replicas.every((r) => nodes.some((n) => n.output().split('\n').some((line) => line.includes('"msg":"replica stopped"') && line.includes(`"key":"${r.key}"`)))), 30_000);
    const nc = await connect({ servers: server.url });
    try {
      const kv = await new Kvm(nc).open('switchyard_replicas');
      await waitFor('the record of gone to be deleted', async () => {
        const e = await kv.get('ep.gone');
        return !e || e.operation !== 'PUT';
      }, 30_000);
    } finally {
      await nc.close();
    }
    const s = await status(server.url);
    assert.deepEqual(Object.keys(s.endpoints).sort(), ['idle', 'kept']);
    for (const gw of gateways) {
      const d = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as { endpoints: Array<{ name: string }>; federation: { endpoints: Record<string, unknown> } };
      assert.deepEqual(d.endpoints.map((e) => e.name).sort(), ['idle', 'kept']);
      await waitFor('the gateway to stop following gone', async () => !('gone' in ((await (await fetch(`${gw.url}/v1/endpoints`)).json()) as typeof d).federation.endpoints), 10_000);
      assert.equal((await postJson(`${gw.url}/inference/kept`, { value: 'k' })).status, 200, 'the endpoints still deployed serve on');
    }
  });
});
