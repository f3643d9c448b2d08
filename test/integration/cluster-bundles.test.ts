/**
 * Predictors travel whole: every demo endpoint, unchanged, served by a node agent (a CLI child
 * process with its own work dir, outside the project), including the stream and image predictors
 * whose relative imports reach into the project and whose package imports (fast-png) resolve on
 * the node. The TypeScript source of a predictor travels too, with its `.js`-spelled imports of
 * `.ts` files.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { demoConfig } from '../../gateway/config/demo.js';
import { killChildren, startClusterGateway, startNodeAgent, type NodeAgentHandle } from '../helpers/cluster.js';
import { postJson, repoRoot, type TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

describe('predictors on a node agent', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bundles-'));
  let server: NatsServer;
  let node: NodeAgentHandle;
  let gw: TestGateway;

  before(async () => {
    server = await NatsServer.start();
    // Every demo endpoint, stream-ts and public-api.
    node = startNodeAgent({ nats: server.url, name: 'eu-1', region: 'eu', maxReplicas: Object.keys(demoConfig().endpoints).length + 2, workDir: dir });
    await node.up;
    const endpoints: Record<string, Record<string, unknown>> = {};
    for (const [name, ep] of Object.entries(demoConfig().endpoints)) {
      endpoints[name] = {
        ...(ep.predictor ? { predictor: ep.predictor } : {}),
        ...(ep.model ? { model: ep.model } : {}),
        settings: ep.settings,
        produces: ep.produces,
        placement: 'remote',
      };
    }
    // A user's project outside this one: a helper beside the predictor, and the public API by package name.
    const project = path.join(dir, 'project');
    mkdirSync(path.join(project, 'lib'), { recursive: true });
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(path.join(project, 'lib', 'shout.js'), 'export const shout = (text) => String(text).toUpperCase();\n');
    writeFileSync(
      path.join(project, 'predictor.js'),
      [
        "import { SwitchyardError } from 'switchyard/predictor';",
        "import { shout } from './lib/shout.js';",
        'export default {',
        "  predict(input) { if (typeof input?.text !== 'string') throw new SwitchyardError('SY_BAD_REQUEST', 'text is required'); return { said: shout(input.text) }; },",
        '};',
      ].join('\n'),
    );
    endpoints['public-api'] = { predictor: path.join(project, 'predictor.js'), placement: 'remote' };
    endpoints['stream-ts'] = { predictor: path.join(repoRoot, 'examples/stream/predictor.ts'), placement: 'remote', settings: { interval_ms: 0 } };
    gw = await startClusterGateway({ nats: server.url, region: 'eu', endpoints });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places every demo endpoint on the node', async () => {
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { endpoints: Record<string, { nodes: string[] }> };
    for (const name of ['echo', 'mlp', 'stream', 'parrot', 'image', 'stream-ts', 'public-api']) assert.deepEqual(ready.endpoints[name]?.nodes, ['eu-1'], name);
  });

  it('resolves the public switchyard/predictor API and a relative helper of a predictor from another project', async () => {
    const ok = await postJson(`${gw.url}/inference/public-api`, { text: 'hi' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json, { said: 'HI' });
    const bad = await postJson(`${gw.url}/inference/public-api`, {});
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json?.error?.code, 'SY_BAD_REQUEST');
  });

  it('answers echo and mlp', async () => {
    const echo = await postJson(`${gw.url}/inference/echo`, { text: 'hello' });
    assert.equal(echo.status, 200, echo.text);
    assert.match(echo.text, /hello/);
    const mlp = await postJson(`${gw.url}/inference/mlp`, { x: { dims: [1, 4], data: [0.1, 0.2, 0.3, 0.4] } });
    assert.equal(mlp.status, 200, mlp.text);
    assert.ok(mlp.json && typeof mlp.json === 'object', mlp.text);
  });

  it('streams from the stream predictor, whose errors module came along', async () => {
    for (const endpoint of ['stream', 'stream-ts']) {
      const res = await fetch(`${gw.url}/inference/${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'why', stream: true, chunks: 3, interval_ms: 0 }),
      });
      assert.equal(res.status, 200, endpoint);
      const text = await res.text();
      assert.equal(text, [1, 2, 3].map((i) => `Answer for why is: ${i}\n\n`).join(''), endpoint);
      // The relative import is used on the node: a bad input is refused with its typed error.
      const bad = await postJson(`${gw.url}/inference/${endpoint}`, { text: 'why', chunks: 0 });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.json?.error?.code, 'SY_BAD_REQUEST');
    }
  });

  it('draws a PNG with the image predictor, whose package import resolved on the node', async () => {
    const res = await fetch(`${gw.url}/inference/image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'image/png' },
      body: JSON.stringify({ text: 'hi', width: 32, height: 32 }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.deepEqual([...bytes.subarray(1, 4)], [...Buffer.from('PNG')]);
  });

  it('keeps the files of a bundle in their places under the node work dir', () => {
    const bundles = path.join(dir, 'eu-1', 'artifacts', 'bundles');
    const built = readdirSync(bundles);
    assert.ok(built.length >= 5, `bundles: ${built.join(', ')}`);
    const streamBundle = built.map((b) => path.join(bundles, b)).find((b) => {
      try {
        return readdirSync(path.join(b, 'examples', 'stream')).includes('predictor.js');
      } catch {
        return false;
      }
    });
    assert.ok(streamBundle, 'a bundle holds examples/stream/predictor.js');
    assert.ok(readdirSync(path.join(streamBundle, 'workers', 'protocol')).includes('errors.js'));
    assert.ok(!streamBundle.startsWith(repoRoot), 'the node loads its own copy, not the project files');
  });
});
