import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Objm } from '@nats-io/obj';
import { ArtifactStore } from '../../workers/cluster/artifacts.js';
import { ClusterConnection } from '../../workers/cluster/connection.js';
import { NatsServer } from '../helpers/nats-server.js';

describe('cluster artifacts', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-artifacts-'));
  let server: NatsServer;
  let gatewaySide: ClusterConnection;
  let nodeSide: ClusterConnection;

  before(async () => {
    server = await NatsServer.start();
    gatewaySide = await ClusterConnection.connect({ servers: server.url });
    nodeSide = await ClusterConnection.connect({ servers: server.url });
  });

  after(async () => {
    await gatewaySide?.close();
    await nodeSide?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves a multi-megabyte model from the gateway to a node, content-addressed', async () => {
    const model = path.join(dir, 'model.onnx');
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(model, bytes);
    const up = await ArtifactStore.open(gatewaySide);
    const ref = await up.put(model);
    assert.equal(ref.name, 'model.onnx');
    assert.equal(ref.size, bytes.byteLength);
    assert.equal(ref.sha256, createHash('sha256').update(bytes).digest('hex'));

    const down = await ArtifactStore.open(nodeSide);
    const cache = path.join(dir, 'cache');
    const local = await down.fetch(ref, cache);
    assert.equal(local, path.join(cache, ref.sha256, 'model.onnx'));
    assert.ok(readFileSync(local).equals(bytes));
  });

  it('uploads identical bytes once, and serves a node from its cache afterwards', async () => {
    const file = path.join(dir, 'predictor.js');
    writeFileSync(file, 'export default { predict: (x) => x };\n');
    const store = await ArtifactStore.open(gatewaySide);
    const ref = await store.put(file);
    const objects = await new Objm(gatewaySide.nc).open(gatewaySide.subjects.artifactsBucket);
    const first = await objects.info(ref.sha256);
    assert.deepEqual(await store.put(file), ref);
    assert.equal((await objects.info(ref.sha256))?.nuid, first?.nuid, 'the second put stored nothing new');

    const cache = path.join(dir, 'cache2');
    const node = await ArtifactStore.open(nodeSide);
    const local = await node.fetch(ref, cache);
    const [a, b] = await Promise.all([node.fetch(ref, cache), node.fetch(ref, cache)]);
    assert.equal(a, local);
    assert.equal(b, local);
    await objects.delete(ref.sha256);
    assert.equal(await node.fetch(ref, cache), local, 'the cached copy is used without the bucket');
  });

  it('replaces a damaged cache entry and refuses bytes that do not match their hash', async () => {
    const file = path.join(dir, 'weights.bin');
    writeFileSync(file, randomBytes(5000));
    const store = await ArtifactStore.open(gatewaySide);
    const ref = await store.put(file);
    const cache = path.join(dir, 'cache3');
    const local = await store.fetch(ref, cache);
    writeFileSync(local, 'truncated');
    assert.equal(await store.fetch(ref, cache), local);
    assert.equal(statSync(local).size, 5000);

    const lying = { ...ref, name: 'lying.bin', sha256: createHash('sha256').update('something else').digest('hex') };
    const objects = await new Objm(gatewaySide.nc).open(gatewaySide.subjects.artifactsBucket);
    await objects.putBlob({ name: lying.sha256 }, readFileSync(file));
    await assert.rejects(store.fetch(lying, cache), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SY_NO_REPLICA');
      assert.match(err.message, /does not match/);
      return true;
    });
  });

  it('reports a missing artifact and rejects references that could escape the cache', async () => {
    const store = await ArtifactStore.open(nodeSide);
    const missing = { sha256: 'a'.repeat(64), name: 'gone.onnx', size: 10 };
    await assert.rejects(store.fetch(missing, dir), (err: Error & { code?: string }) => err.code === 'SY_NO_REPLICA' && /not in the artifacts bucket/.test(err.message));
    for (const bad of [
      { ...missing, name: '../../etc/passwd' },
      { ...missing, name: '.hidden' },
      { ...missing, sha256: '../x' },
    ]) {
      await assert.rejects(store.fetch(bad, dir), (err: Error & { code?: string }) => err.code === 'SY_BAD_REQUEST');
    }
  });
});
