/**
 * The NATS permissions docs/cluster.md gives are enough: a node confined to the subject prefix
 * (plus reading the artifacts bucket) joins, loads a predictor and serves, for a gateway of its
 * own and for a federation; a gateway confined to the prefix, the JetStream API, the artifacts
 * object store and the federation's three KV buckets deploys, leads, serves and reports status.
 * If either ever needed to publish or subscribe anywhere else, the server would refuse it and
 * this test would fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixtureModule, killChildren, startClusterGateway, startNodeAgent, waitFor } from '../helpers/cluster.js';
import { deploy, startFederatedGateway, status } from '../helpers/federation.js';
import { postJson, type TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

const BUCKET = 'OBJ_switchyard_artifacts';
/** The federation's KV buckets (docs/cluster.md, "What is stored where"). */
const KV_BUCKETS = ['switchyard_deployment', 'switchyard_replicas', 'switchyard_gateways'];
const GATEWAY_CREDENTIALS = ['--nats-user', 'gateway', '--nats-password', 'gateway-pass'];

describe('cluster under confined NATS credentials', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-perms-'));
  let server: NatsServer;
  let gw: TestGateway;
  let predictor: string;

  before(async () => {
    predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start({
      users: [
        { user: 'gateway', password: 'gateway-pass', permissions: { publish: ['switchyard.>', '$JS.API.>', '$O.>', ...KV_BUCKETS.map((b) => `$KV.${b}.>`)], subscribe: ['switchyard.>'] } },
        {
          user: 'node',
          password: 'node-pass',
          permissions: {
            publish: ['switchyard.>', '$JS.API.INFO', `$JS.API.STREAM.INFO.${BUCKET}`, `$JS.API.STREAM.MSG.GET.${BUCKET}`, `$JS.API.CONSUMER.CREATE.${BUCKET}.>`, `$JS.API.CONSUMER.DELETE.${BUCKET}.>`],
            subscribe: ['switchyard.>'],
          },
        },
      ],
    });
    const node = startNodeAgent({ nats: server.url, name: 'confined', region: 'eu', workDir: dir, args: ['--user', 'node', '--password', 'node-pass'] });
    await node.up;
    gw = await startClusterGateway({ nats: server.url, region: 'eu', cluster: { user: 'gateway', password: 'gateway-pass' }, endpoints: { e: { predictor, placement: 'remote' } } });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places a replica on the confined node and serves through it', async () => {
    const res = await postJson(`${gw.url}/inference/e`, { value: 'confined' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { replica: 'e@confined/cpu/1', value: 'confined' });
  });

  it('runs a federation under the same credentials: deploy, a federated gateway leading and serving, status', async () => {
    await deploy(server.url, dir, { fed: { predictor, replicas: 1 } }, 'federation.yaml', GATEWAY_CREDENTIALS);
    const fed = await startFederatedGateway(server.url, 'eu', GATEWAY_CREDENTIALS);
    await waitFor('the federated gateway to serve fed', async () => (await postJson(`${fed.url}/inference/fed`, { value: 'f' }, { 'x-request-timeout-ms': '2000' })).status === 200, 60_000);
    const s = await status(server.url, GATEWAY_CREDENTIALS);
    assert.equal(s.endpoints.fed?.replicas.length, 1);
    assert.equal(s.endpoints.fed?.replicas[0]?.node, 'confined');
    assert.equal(s.gateways.length, 1);
    assert.deepEqual(s.gateways[0]!.leading, ['fed']);
    assert.doesNotMatch(fed.output(), /[Pp]ermissions? [Vv]iolation/);
  });
});
