/**
 * Fail-over through node agents: a stream under way when its node dies ends with a typed error, a
 * node SIGKILLed under load costs no unary request and its replicas come back on the survivors,
 * and a nats-server restart mid-load heals without restarting the gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { failures, fixtureModule, killChildren, runLoad, startClusterGateway, startNodeAgent, waitFor, type NodeAgentHandle } from '../helpers/cluster.js';
import type { TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

interface OpenStream {
  status: number;
  text: string;
  /** Why reading stopped early (the connection was cut), if it did. */
  cut: string | undefined;
  done: Promise<void>;
}

function openStream(url: string, body: unknown, headers: Record<string, string> = {}): OpenStream {
  const stream: OpenStream = { status: 0, text: '', cut: undefined, done: Promise.resolve() };
  stream.done = (async () => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    stream.status = res.status;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        stream.text += decoder.decode(value, { stream: true });
      }
    } catch (err) {
      stream.cut = (err as Error).message;
    }
  })();
  return stream;
}

describe('fail-over across node agents', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cluster-failover-'));
  let server: NatsServer;
  let gw: TestGateway;
  const nodes = new Map<string, NodeAgentHandle>();

  const endpoint = (name: string) => gw.gateway.endpoints.get(name)!;
  const nodesOf = (name: string) => endpoint(name).replicas.filter((r) => r.state === 'ready').map((r) => r.link.node);

  before(async () => {
    const behaviours = fixtureModule('behaviours', dir);
    const predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start();
    for (const name of ['n1', 'n2', 'n3']) nodes.set(name, startNodeAgent({ nats: server.url, name, region: 'eu', maxReplicas: 4, workDir: dir }));
    await Promise.all([...nodes.values()].map((n) => n.up));
    gw = await startClusterGateway({
      nats: server.url,
      region: 'eu',
      endpoints: {
        echo: { predictor, placement: 'remote', replicas: 2, max_concurrency: 64 },
        s: { predictor: behaviours, placement: 'remote' },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('spreads replicas over the nodes', () => {
    const used = [...nodesOf('echo'), ...nodesOf('s')];
    assert.equal(new Set(used).size, 3, `echo on ${nodesOf('echo')}, s on ${nodesOf('s')}`);
  });

  it('ends a stream under way with SY_REPLICA_LOST when its node dies, chunked and SSE, then re-places the replica', async () => {
    const url = `${gw.url}/inference/s`;
    const chunked = openStream(url, { stream: true, chunks: 100_000, ms: 20 });
    const sse = openStream(url, { stream: true, chunks: 100_000, ms: 20 }, { accept: 'text/event-stream' });
    await waitFor('both streams to be under way', () => chunked.text.includes('chunk 2\n') && sse.text.includes('data: chunk 2'));
    const [victim] = nodesOf('s');
    assert.ok(victim, 'a node hosts s');
    await nodes.get(victim)!.kill('SIGKILL');
    await Promise.all([chunked.done, sse.done]);

    assert.equal(chunked.status, 200);
    const lastLine = chunked.text.trimEnd().split('\n').pop()!;
    assert.equal(JSON.parse(lastLine).error.code, 'SY_REPLICA_LOST', `the chunked body ended with ${JSON.stringify(chunked.text.slice(-200))}`);
    assert.ok(chunked.cut, 'the chunked response was cut, so it cannot pass for complete');

    assert.equal(sse.status, 200);
    const errorEvent = /event: error\ndata: (.*)\n\n$/.exec(sse.text);
    assert.ok(errorEvent, `the SSE stream ended with ${JSON.stringify(sse.text.slice(-200))}`);
    assert.equal(JSON.parse(errorEvent[1]!).error.code, 'SY_REPLICA_LOST');
    assert.ok(!sse.text.includes('event: end'));

    await waitFor('s to be re-placed on a surviving node', () => nodesOf('s').length === 1 && nodesOf('s')[0] !== victim);
    const again = openStream(url, { stream: true, chunks: 3 });
    await again.done;
    assert.equal(again.text, 'chunk 0\nchunk 1\nchunk 2\n');
  });

  it('loses no unary request when a node is SIGKILLed under load, and keeps the replica count', async (t) => {
    const [victim] = nodesOf('echo');
    assert.ok(victim, 'a node hosts echo');
    const survivors = [...nodes.keys()].filter((n) => n !== victim && nodes.get(n)!.child.exitCode === null && nodes.get(n)!.child.signalCode === null);
    const outcome = await runLoad({
      url: `${gw.url}/inference/echo`,
      total: 3_000,
      concurrency: 24,
      body: { value: 'x' },
      onProgress: (finished) => {
        if (finished === 600) void nodes.get(victim)!.kill('SIGKILL');
      },
    });
    t.diagnostic(`killed ${victim} after 600 of 3000 requests; ${outcome.ok} answered 200, failed: ${JSON.stringify(outcome.failed)}`);
    assert.equal(failures(outcome), 0, JSON.stringify(outcome.failed));
    assert.equal(outcome.ok, 3_000);
    await waitFor('echo to be back at two ready replicas on the survivors', () => nodesOf('echo').length === 2);
    assert.equal(endpoint('echo').desired, 2);
    for (const node of nodesOf('echo')) assert.ok(survivors.includes(node), `echo replica on ${node}`);
  });

  it('moves the replicas of a node that drains (SIGTERM) to another without failing a request', async () => {
    const [draining] = nodesOf('echo');
    assert.ok(draining, 'a node hosts echo');
    const fresh = startNodeAgent({ nats: server.url, name: 'n4', region: 'eu', maxReplicas: 4, workDir: dir });
    nodes.set('n4', fresh);
    await fresh.up;
    await waitFor('the gateway to see n4', async () => ((await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any).cluster.nodes.some((n: any) => n.name === 'n4'));
    const outcome = await runLoad({
      url: `${gw.url}/inference/echo`,
      total: 1_500,
      concurrency: 16,
      body: { value: 'w' },
      onProgress: (finished) => {
        if (finished === 300) nodes.get(draining)!.child.kill('SIGTERM');
      },
    });
    assert.equal(failures(outcome), 0, JSON.stringify(outcome.failed));
    assert.equal(await nodes.get(draining)!.exited, 0, 'the drained node exited cleanly');
    await waitFor('every replica to be on n4', () => nodesOf('echo').join() === 'n4,n4' && nodesOf('s').join() === 'n4');
  });

  it('recovers from a nats-server restart mid-load without a gateway restart', async (t) => {
    const url = `${gw.url}/inference/echo`;
    // Requests lost with the connection end at their deadline; keep it short so the outage is short for clients too.
    const headers = { 'x-request-timeout-ms': '2000' };
    let stop = false;
    let ok = 0;
    const during: Record<string, number> = {};
    const background = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) {
          const one = await runLoad({ url, total: 1, concurrency: 1, body: { value: 'y' }, headers });
          ok += one.ok;
          for (const [k, v] of Object.entries(one.failed)) during[k] = (during[k] ?? 0) + v;
        }
      }),
    );
    await waitFor('load to flow', () => ok > 200);
    await server.stop();
    await delay(1_000);
    await server.restart();
    const okAtRestart = ok;
    await waitFor('requests to succeed again after the restart', () => ok > okAtRestart + 200, 20_000);
    stop = true;
    await background;
    t.diagnostic(`during the outage: ${JSON.stringify(during)} failed; ${ok} succeeded in all`);

    const after = await runLoad({ url, total: 1_000, concurrency: 16, body: { value: 'z' } });
    assert.equal(failures(after), 0, JSON.stringify(after.failed));
    assert.equal(after.ok, 1_000);
    const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
    assert.equal(listing.cluster.connection, 'connected');
    assert.equal(nodesOf('echo').length, 2);
  });
});
