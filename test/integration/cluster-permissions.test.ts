/**
 * The NATS permissions docs/cluster.md gives for node credentials are enough: a node confined to
 * the subject prefix (plus reading the artifacts bucket) joins, loads a predictor and serves. If
 * a node ever needed to publish or subscribe anywhere else, the server would refuse it and this
 * test would fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixtureModule, killChildren, startClusterGateway, startNodeAgent } from '../helpers/cluster.js';
import { postJson, type TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

const BUCKET = 'OBJ_switchyard_artifacts';

describe('cluster under confined NATS credentials', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-perms-'));
  let server: NatsServer;
  let gw: TestGateway;

  before(async () => {
    const predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start({
      users: [
        { user: 'gateway', password: 'gateway-pass', permissions: { publish: ['switchyard.>', '$JS.API.>', '$O.>'], subscribe: ['switchyard.>'] } },
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
});
