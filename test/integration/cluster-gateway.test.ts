/**
 * A gateway serving through node agents in two regions (plus two "lab" nodes, one slow): answers
 * of every kind from remote replicas, region preference and spill-over, latency-weighted routing,
 * credentials on both sides, and `switchyard serve --nats` sharing the nodes with this gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../gateway/config/load.js';
import { Gateway } from '../../gateway/gateway.js';
import { pngFor } from '../fixtures/cluster-predictor.js';
import { fixtureModule, killChildren, runLoad, spawnCli, startClusterGateway, startNodeAgent, failures, waitFor, type NodeAgentHandle } from '../helpers/cluster.js';
import type { TestGateway } from '../helpers/gateway.js';
import { postJson } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

const TOKEN = 'cluster-gateway-token';

/** The node a remote replica id names (`endpoint@node/device/n`). */
function nodeOf(answer: unknown): string {
  const replica = (answer as { replica?: string }).replica ?? '';
  return /@([^/]+)\//.exec(replica)?.[1] ?? `(not remote: ${replica})`;
}

function countBy(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

describe('a gateway serving through node agents', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-gw-'));
  let server: NatsServer;
  let gw: TestGateway;
  const nodes = new Map<string, NodeAgentHandle>();

  const call = (endpoint: string, body: unknown, headers: Record<string, string> = {}) => postJson(`${gw.url}/inference/${endpoint}`, body, headers);

  before(async () => {
    const behaviours = fixtureModule('behaviours', dir);
    const predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start({ token: TOKEN });
    const agents = [
      startNodeAgent({ nats: server.url, token: TOKEN, name: 'eu-1', region: 'eu', maxReplicas: 3, workDir: dir }),
      startNodeAgent({ nats: server.url, token: TOKEN, name: 'us-1', region: 'us', maxReplicas: 2, workDir: dir }),
      startNodeAgent({ nats: server.url, token: TOKEN, name: 'fast-1', region: 'lab', maxReplicas: 1, workDir: dir }),
      startNodeAgent({ nats: server.url, token: TOKEN, name: 'slow-1', region: 'lab', maxReplicas: 1, workDir: dir, env: { SWITCHYARD_TEST_DELAY_MS: '25' } }),
    ];
    for (const agent of agents) nodes.set(agent.name, agent);
    await Promise.all(agents.map((a) => a.up));
    // Placed in this order, one replica at a time: b, img and geo's first replica fill eu-1 (the
    // gateway's region), geo's second goes to us-1 (its next region), weighted to the lab pair.
    gw = await startClusterGateway({
      nats: server.url,
      token: TOKEN,
      region: 'eu',
      endpoints: {
        b: { predictor: behaviours, placement: 'remote' },
        img: { predictor, placement: 'remote', produces: ['image/png'] },
        geo: { predictor, placement: 'remote', replicas: 2, regions: ['eu', 'us'], max_concurrency: 1 },
        weighted: { predictor, placement: 'remote', replicas: 2, regions: ['lab'] },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places every replica on a node and lists the nodes', async () => {
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as any;
    assert.equal(ready.ready, true);
    assert.deepEqual(ready.endpoints.b.nodes, ['eu-1']);
    assert.deepEqual(ready.endpoints.geo.nodes, ['eu-1', 'us-1']);
    assert.deepEqual(ready.endpoints.weighted.nodes, ['fast-1', 'slow-1']);
    const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
    assert.equal(listing.cluster.connection, 'connected');
    const byName = Object.fromEntries(listing.cluster.nodes.map((n: any) => [n.name, n]));
    assert.deepEqual(Object.keys(byName).sort(), ['eu-1', 'fast-1', 'slow-1', 'us-1']);
    assert.equal(byName['eu-1'].region, 'eu');
    assert.equal(byName['eu-1'].replicas_of_this_gateway, 3);
    assert.deepEqual(byName['us-1'].devices.map((d: any) => d.id), ['cpu']);
    const img = listing.endpoints.find((e: any) => e.name === 'img');
    assert.equal(img.placement, 'remote');
    assert.equal(img.replicas[0].node, 'eu-1');
    assert.equal(img.replicas[0].region, 'eu');
  });

  it('serves unary, chunked, SSE and file answers from remote replicas', async () => {
    const unary = await call('b', { value: 'over the wire' });
    assert.equal(unary.status, 200, unary.text);
    assert.equal(unary.json.echo, 'over the wire');
    assert.equal(nodeOf(unary.json), 'eu-1');

    const chunked = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream: true, chunks: 40 }) });
    assert.equal(chunked.status, 200);
    assert.equal(await chunked.text(), Array.from({ length: 40 }, (_, i) => `chunk ${i}\n`).join(''));

    const sse = await fetch(`${gw.url}/inference/b`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ stream: true, chunks: 3 }),
    });
    assert.equal(sse.headers.get('content-type'), 'text/event-stream');
    const events = await sse.text();
    assert.deepEqual(events.match(/^data: chunk \d+$/gm), ['data: chunk 0', 'data: chunk 1', 'data: chunk 2']);
    assert.match(events, /event: end\n/);

    const file = await fetch(`${gw.url}/inference/img`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'image/png' }, body: JSON.stringify({ value: { n: 42 } }) });
    assert.equal(file.status, 200);
    assert.equal(file.headers.get('content-type'), 'image/png');
    assert.deepEqual(new Uint8Array(await file.arrayBuffer()), pngFor({ n: 42 }));
  });

  it('prefers the client region, then its own, and spills over when the preferred replicas are saturated', async () => {
    const plain = await runLoad({ url: `${gw.url}/inference/geo`, total: 20, concurrency: 1, body: {}, keepAnswers: true });
    assert.deepEqual(countBy(plain.answers.map(nodeOf)), { 'eu-1': 20 }, 'without a header the gateway region (eu) serves');
    const us = await runLoad({ url: `${gw.url}/inference/geo`, total: 20, concurrency: 1, body: {}, headers: { 'x-switchyard-region': 'us' }, keepAnswers: true });
    assert.deepEqual(countBy(us.answers.map(nodeOf)), { 'us-1': 20 }, 'the client region wins');

    // geo takes one request per replica at a time: occupy the us replica, and us clients spill to eu.
    const busy = call('geo', { ms: 3_000 }, { 'x-switchyard-region': 'us' });
    const usReplica = gw.gateway.endpoints.get('geo')!.replicas.find((r) => r.link.node === 'us-1')!;
    await waitFor('the us replica to be busy', () => usReplica.inFlight === 1);
    const spilled = await runLoad({ url: `${gw.url}/inference/geo`, total: 10, concurrency: 1, body: {}, headers: { 'x-switchyard-region': 'us' }, keepAnswers: true });
    assert.deepEqual(countBy(spilled.answers.map(nodeOf)), { 'eu-1': 10 });
    const slow = await busy;
    assert.equal(slow.status, 200);
    assert.equal(nodeOf(slow.json), 'us-1');
  });

  it('sends a slow replica proportionally less traffic', async (t) => {
    const outcome = await runLoad({ url: `${gw.url}/inference/weighted`, total: 600, concurrency: 8, body: {}, keepAnswers: true });
    assert.equal(failures(outcome), 0, JSON.stringify(outcome.failed));
    const counts = countBy(outcome.answers.map(nodeOf));
    t.diagnostic(`fast-1 served ${counts['fast-1'] ?? 0}, slow-1 (25 ms slower) served ${counts['slow-1'] ?? 0}`);
    assert.ok((counts['fast-1'] ?? 0) > 3 * (counts['slow-1'] ?? 0), `fast ${counts['fast-1']} vs slow ${counts['slow-1']}`);
    const replicas = gw.gateway.endpoints.get('weighted')!.replicas;
    const latency = (node: string) => replicas.find((r) => r.link.node === node)!.latencyMs;
    assert.ok(latency('slow-1') > latency('fast-1'), 'the gateway measured the slow replica as slower');
  });

  it('refuses a node with the wrong token and a gateway with the wrong token', async () => {
    const intruder = startNodeAgent({ nats: server.url, token: 'not-the-token', name: 'intruder', region: 'eu', workDir: dir });
    assert.equal(await intruder.exited, 1);
    assert.match(intruder.output(), /refused the credentials/);
    const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
    assert.ok(!listing.cluster.nodes.some((n: any) => n.name === 'intruder'));

    const config = validateConfig({ server: { port: 0, log_level: 'silent' }, cluster: { nats: server.url, token: 'not-the-token' }, endpoints: { b: { predictor: path.join(dir, 'behaviours.mjs'), placement: 'remote' } } });
    await assert.rejects(Gateway.start(config), (err: Error & { code?: string }) => err.code === 'SY_NATS_AUTH' && /refused the credentials/.test(err.message));

    const refused = spawnCli(['serve', '--demo', '--port', '0', '--nats', server.url, '--nats-token', 'not-the-token']);
    assert.equal(await refused.exited, 1);
    assert.match(refused.output(), /switchyard: NATS at .* refused the credentials/);
  });

  it('shares the nodes with a second gateway started as `switchyard serve --nats`', async () => {
    const config = path.join(dir, 'second.yaml');
    writeFileSync(config, `server: { log_level: warn }\nendpoints:\n  b: { predictor: behaviours.mjs, placement: remote }\n`);
    const second = spawnCli(['serve', '--config', config, '--host', '127.0.0.1', '--port', '0', '--region', 'eu', '--nats', server.url, '--nats-token', TOKEN]);
    await waitFor('the second gateway to be ready', () => /ready: b/.test(second.output()) || second.child.exitCode !== null, 20_000);
    const url = /listening on (http:\/\/[^\s]+)/.exec(second.output())?.[1];
    assert.ok(url, second.output());
    const res = await postJson(`${url}/inference/b`, { value: 'second' });
    assert.equal(res.status, 200, res.text);
    // eu-1 is full with this gateway's replicas, so the second one went to the next node with room.
    assert.equal(nodeOf(res.json), 'us-1');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });

  it('spills to another region when the preferred region has no replica left', async () => {
    await nodes.get('us-1')!.kill('SIGKILL');
    const outcome = await runLoad({ url: `${gw.url}/inference/geo`, total: 20, concurrency: 1, body: {}, headers: { 'x-switchyard-region': 'us' }, keepAnswers: true });
    assert.equal(failures(outcome), 0, JSON.stringify(outcome.failed));
    assert.deepEqual(countBy(outcome.answers.map(nodeOf)), { 'eu-1': 20 });
    await waitFor('us-1 to be dead', () => !gw.gateway.readiness().endpoints.geo?.nodes.includes('us-1'));
  });
});
