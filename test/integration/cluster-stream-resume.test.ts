/**
 * A node agent SIGKILLed under 200 resumable streams in flight (raw chunked, SSE and WebSocket in
 * JSON and msgpack, mixed): every stream continues on the surviving node and every client gets
 * exactly its golden stream, byte for byte, with no error and no repeat.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { goldenChunk, goldenStream } from '../fixtures/resumable-stream.js';
import { fixtureModule, killChildren, startClusterGateway, startNodeAgent, waitFor, type NodeAgentHandle } from '../helpers/cluster.js';
import type { TestGateway } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

const CHUNKS = 150;
const CHUNK_MS = 30;

interface Received {
  kind: string;
  input: { tag: string; chunks: number; ms: number; size: number };
  /** What the client got, rebuilt into the stream's text (SSE and WebSocket: the chunks joined). */
  text: string;
  /** Chunks received so far. */
  chunks: number;
  /** Anything other than a clean end: an error frame, a cut, a seq out of order. */
  problem: string | undefined;
  done: Promise<void>;
}

function newReceived(kind: string, i: number): Received {
  return { kind, input: { tag: `${kind}${i}`, chunks: CHUNKS, ms: CHUNK_MS, size: 40 + (i % 7) * 10 }, text: '', chunks: 0, problem: undefined, done: Promise.resolve() };
}

async function httpStream(url: string, r: Received, accept: string | undefined): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) }, body: JSON.stringify({ ...r.input, stream: true }) });
  if (res.status !== 200) {
    r.problem = `status ${res.status}`;
    return;
  }
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  let raw = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      raw += decoder.decode(value, { stream: true });
      if (accept) r.chunks = raw.split('\nid: ').length - 1 + (raw.startsWith('id: ') ? 1 : 0);
      else r.chunks = raw.split('\n').length - 1;
    }
  } catch (err) {
    r.problem = `cut: ${(err as Error).message}`;
  }
  if (!accept) {
    r.text = raw;
    return;
  }
  const stream = res.headers.get('x-switchyard-stream');
  // Comment lines (":") only push bytes out; they are no events.
  const events = raw
    .split('\n')
    .filter((line) => !line.startsWith(':'))
    .join('\n')
    .split('\n\n')
    .filter(Boolean);
  const last = events.pop();
  if (last !== 'event: end\ndata: {}') r.problem ??= `ended with ${JSON.stringify(last)}`;
  events.forEach((event, i) => {
    const [id, ...data] = event.split('\n');
    if (id !== `id: ${stream}:${i + 1}`) r.problem ??= `event ${i + 1} has ${id}`;
    r.text += data.map((l) => l.slice(6)).join('\n');
  });
}

/** Streams on one socket, each a request id; every reply is checked for its seq. */
function wsStreams(url: string, list: Received[], binary: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let open = list.length;
    ws.on('error', reject);
    ws.on('open', () => {
      list.forEach((r, i) => {
        const message = { id: i, input: r.input, stream: true };
        ws.send(binary ? pack(message) : JSON.stringify(message));
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const reply = (isBinary ? unpack(data) : JSON.parse(data.toString('utf8'))) as { id: number; seq?: number; chunk?: string | Uint8Array; done?: boolean; error?: { code: string } };
      const r = list[reply.id]!;
      if (reply.chunk !== undefined) {
        if (reply.seq !== r.chunks + 1) r.problem ??= `seq ${reply.seq} after ${r.chunks}`;
        r.chunks++;
        r.text += typeof reply.chunk === 'string' ? reply.chunk : Buffer.from(reply.chunk).toString('utf8');
        return;
      }
      if (reply.error) r.problem ??= `error ${reply.error.code}`;
      if (--open === 0) {
        ws.close();
        resolve();
      }
    });
  });
}

describe('a node SIGKILLed under 200 resumable streams', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-stream-resume-'));
  let server: NatsServer;
  let gw: TestGateway;
  const nodes = new Map<string, NodeAgentHandle>();

  before(async () => {
    const predictor = fixtureModule('resumable-stream', dir);
    server = await NatsServer.start();
    for (const name of ['n1', 'n2']) nodes.set(name, startNodeAgent({ nats: server.url, name, region: 'eu', maxReplicas: 4, workDir: dir}));
    await Promise.all([...nodes.values()].map((n) => n.up));
    gw = await startClusterGateway({
      nats: server.url,
      region: 'eu',
      // A loaded test machine may delay heartbeats; only the SIGKILL should make a node dead.
      cluster: { dead_after_ms: 3_000 },
      endpoints: {
        det: { predictor, placement: 'remote', replicas: 2, max_concurrency: 200, settings: { mode: 'deterministic' } },
        cp: { predictor, placement: 'remote', replicas: 2, max_concurrency: 200, settings: { mode: 'checkpoint', every: 5 } },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives every client its golden stream, byte for byte', async (t) => {
    const streams: Received[] = [];
    const ws: Received[][] = [[], [], [], []];
    for (let i = 0; i < 200; i++) {
      const kind = ['chunked', 'sse', 'ws-json', 'ws-msgpack'][i % 4]!;
      const r = newReceived(kind, i);
      streams.push(r);
      const endpoint = i % 8 < 4 ? 'det' : 'cp';
      if (kind === 'chunked') r.done = httpStream(`${gw.url}/inference/${endpoint}`, r, undefined);
      else if (kind === 'sse') r.done = httpStream(`${gw.url}/inference/${endpoint}`, r, 'text/event-stream');
      else ws[(kind === 'ws-json' ? 0 : 2) + (endpoint === 'det' ? 0 : 1)]!.push(r);
    }
    const sockets = ws.map((list, k) => wsStreams(`${gw.url.replace('http', 'ws')}/inference/${k % 2 === 0 ? 'det' : 'cp'}`, list, k >= 2));
    await waitFor('every stream to be under way', () => streams.every((r) => r.chunks >= 3), 30_000).catch((err: Error) => {
      const late = streams.filter((r) => r.chunks < 3);
      throw new Error(`${err.message}: ${late.length} not yet, e.g. ${late.slice(0, 5).map((r) => `${r.kind} ${r.input.tag} ${r.chunks} ${r.problem ?? ''}`).join('; ')}`);
    });

    const onVictim = (name: string) => [...gw.gateway.endpoints.values()].reduce((n, ep) => n + ep.replicas.filter((r) => r.link.node === name).reduce((m, r) => m + r.inFlight, 0), 0);
    const victim = onVictim('n1') >= onVictim('n2') ? 'n1' : 'n2';
    const moved = onVictim(victim);
    assert.ok(moved > 0, `streams were under way on the node that dies (chunks so far: ${Math.min(...streams.map((r) => r.chunks))} to ${Math.max(...streams.map((r) => r.chunks))}; ${JSON.stringify([...gw.gateway.endpoints.values()].map((ep) => ep.replicas.map((r) => [r.link.node, r.state, r.inFlight])))})`);
    await nodes.get(victim)!.kill('SIGKILL');
    await Promise.all([...streams.map((r) => r.done), ...sockets]);

    t.diagnostic(`${moved} of 200 streams were on ${victim} when it was SIGKILLed`);
    const wrong = streams.filter((r) => r.problem !== undefined || r.text !== goldenStream(r.input));
    assert.deepEqual(
      wrong.slice(0, 5).map((r) => `${r.kind} ${r.input.tag}: ${r.problem ?? `differs after ${commonPrefix(r.text, goldenStream(r.input))} chars`}`),
      [],
      `${wrong.length} of 200 streams differ from their golden output`,
    );
    assert.equal(streams.filter((r) => r.text.endsWith(goldenChunk(r.input, CHUNKS - 1))).length, 200);
  });
});

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
