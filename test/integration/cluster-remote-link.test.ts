import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { putBundle } from '../../workers/cluster/bundles.js';
import { ClusterConnection } from '../../workers/cluster/connection.js';
import { RemoteCluster, type RemoteReplicaLink } from '../../gateway/cluster/remote-link.js';
import type { PlaceReply, PlaceRequest } from '../../workers/cluster/subjects.js';
import { forEachChunk } from '../../workers/protocol/chunk-run.js';
import { pack, unpack, type ReplyFrame, type RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { ReplicaSpec } from '../../workers/pool/thread-link.js';
import { runNodeAgent, type NodeAgent } from '../../workers/node/agent.js';
import { Poller, processPollers } from '../../workers/pool/polling.js';
import { NatsServer } from '../helpers/nats-server.js';

const ECHO = fileURLToPath(new URL('../../../examples/echo/predictor.ts', import.meta.url));

// Everything a remote replica must carry: unary, streams with credit, files, cancellation, death.
const TEST_PREDICTOR = `
import { writeFileSync } from 'node:fs';
import path from 'node:path';
let ctx;
export default {
  setup(c) {
    ctx = c;
    if (c.settings.failSetup) throw new Error('no weights on this machine');
  },
  predict(input, req) {
    if (input.crash) setTimeout(() => process.exit(3), 10);
    if (input.hang) return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    if (req.accept === 'image/png') {
      const file = path.join(ctx.outputDir, 'out-' + req.id + '.png');
      writeFileSync(file, Buffer.from(input.png, 'base64'));
      return file;
    }
    return { echo: input, device: ctx.device, msLeft: req.deadline - Date.now() };
  },
  async *predictStream(input) {
    for (let i = 0; i < input.n; i++) yield 'chunk ' + i;
  },
};
`;

function envelope(id: number, input: unknown, extra: Partial<RequestEnvelope> = {}): RequestEnvelope {
  return { id, body: Buffer.from(JSON.stringify(input)), bodyType: 'json', encoding: 'json', deadline: Date.now() + 15_000, ...extra };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

class Collector {
  frames: ReplyFrame[] = [];
  lost: string[] = [];
  readonly events = { onFrames: (f: ReplyFrame[]) => this.frames.push(...f), onLost: (reason: string) => this.lost.push(reason) };
  of(id: number): ReplyFrame[] {
    return this.frames.filter((f) => f.id === id);
  }
  json(id: number): unknown {
    const frame = this.of(id).find((f) => f.t === 'result');
    assert.ok(frame && frame.t === 'result', `no result for ${id}: ${JSON.stringify(this.of(id))}`);
    return JSON.parse(Buffer.from(frame.body).toString());
  }
}

describe('remote replicas through a node agent', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-remote-'));
  const predictorFile = path.join(dir, 'test-predictor.mjs');
  let server: NatsServer;
  let agent: NodeAgent;
  let gatewayConn: ClusterConnection;
  let cluster: RemoteCluster;
  let seq = 0;

  const spec = (extra: Partial<ReplicaSpec> = {}): ReplicaSpec => ({
    predictorPath: predictorFile,
    outputDir: path.join(dir, 'gateway-out'),
    settings: {},
    produces: ['image/png'],
    keepFiles: false,
    ...extra,
  });
  const link = (s: ReplicaSpec = spec(), device = 'cpu'): RemoteReplicaLink =>
    cluster.createLink({ replicaId: `test@node-a/${device}/${++seq}`, endpoint: 'test', device, node: 'node-a', region: 'eu' }, s);

  before(async () => {
    writeFileSync(predictorFile, TEST_PREDICTOR);
    server = await NatsServer.start({ token: 'cluster-token-1' });
    agent = await runNodeAgent({ nats: server.url, token: 'cluster-token-1', region: 'eu', devices: 'cpu', name: 'node-a', workDir: path.join(dir, 'node'), maxReplicas: 4, pollUs: 150 });
    // The agent's replicas poll for their next request up to its --poll-us, as a gateway's do up to server.poll_us.
    assert.equal(new Poller(processPollers).windowUs, 150);
    gatewayConn = await ClusterConnection.connect({ servers: server.url, token: 'cluster-token-1' });
    cluster = await RemoteCluster.open(gatewayConn, { timings: { deadAfterMs: 3_000 } });
    await waitFor('node-a to join', () => cluster.membership.isRoutable('node-a'));
  });

  after(async () => {
    await cluster?.close();
    await gatewayConn?.close();
    await agent?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a batch of unary requests through the shipped example predictor', async () => {
    const remote = link(spec({ predictorPath: ECHO, produces: [] }));
    const got = new Collector();
    await remote.start(got.events);
    remote.send([envelope(1, { text: 'hello' }), envelope(2, { text: 'world' })]);
    await waitFor('two results', () => got.frames.length === 2);
    assert.deepEqual(got.json(1), { text: 'hello' });
    assert.deepEqual(got.json(2), { text: 'world' });
    assert.equal(remote.incarnation, agent.incarnation);
    await remote.stop();
  });

  it('carries bodies and results larger than the NATS message limit, and re-bases deadlines', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    const big = randomBytes(2 * gatewayConn.maxPayload).toString('base64');
    remote.send([envelope(10, { big }, { deadline: Date.now() + 9_000 })]);
    await waitFor('the big result', () => got.frames.length === 1);
    const answer = got.json(10) as { echo: { big: string }; device: string; msLeft: number };
    assert.equal(answer.echo.big, big);
    assert.equal(answer.device, 'cpu');
    assert.ok(answer.msLeft > 0 && answer.msLeft <= 9_000, `deadline arrived as ${answer.msLeft} ms left`);
    await remote.stop();
  });

  it('streams chunks within the credit and resumes when credit is granted', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    remote.send([envelope(20, { n: 30, stream: true }, { credit: 5 })]);
    // A chunk frame carries the run of chunks the replica produced in one turn (chunk-run.ts).
    const chunksOf = (frames: ReplyFrame[]) => {
      const out: string[] = [];
      for (const f of frames) if (f.t === 'chunk') forEachChunk({ bytes: f.data, sizes: f.sizes, firstSeq: 1 }, (bytes) => out.push(Buffer.from(bytes).toString()));
      return out;
    };
    await waitFor('the first chunks', () => chunksOf(got.of(20)).length === 5);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(chunksOf(got.of(20)).length, 5, 'the replica waits for credit');
    remote.control({ t: 'credits', ids: [20], ns: [100] });
    await waitFor('the end of the stream', () => got.of(20).some((f) => f.t === 'end'));
    const frames = got.of(20);
    assert.equal(frames[0]?.t, 'start');
    assert.deepEqual(chunksOf(frames), Array.from({ length: 30 }, (_, i) => `chunk ${i}`));
    await remote.stop();
  });

  it('lands a file written on the node in the gateway output folder', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    const png = randomBytes(70_000);
    remote.send([envelope(30, { png: png.toString('base64') }, { fileType: 'image/png' })]);
    await waitFor('the file', () => got.frames.length === 1);
    const frame = got.frames[0];
    assert.ok(frame?.t === 'file', JSON.stringify(frame));
    assert.equal(path.dirname(frame.path), path.join(dir, 'gateway-out'));
    assert.equal(frame.contentType, 'image/png');
    assert.equal(frame.size, png.byteLength);
    assert.equal(frame.remove, true);
    assert.ok(readFileSync(frame.path).equals(png));
    await remote.stop();
  });

  it('cancels a request on the node and reports its load in heartbeats', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    remote.send([envelope(40, { hang: true })]);
    await waitFor('the hanging request to show in the heartbeat', () => cluster.node('node-a')?.inFlight[remote.key] === 1);
    remote.control({ t: 'cancel', id: 40 });
    await waitFor('the load to drop after the cancel', () => cluster.node('node-a')?.inFlight[remote.key] === 0);
    assert.deepEqual(got.frames, []);
    await remote.stop();
    await waitFor('the stopped replica to leave the heartbeat', () => !(remote.key in (cluster.node('node-a')?.inFlight ?? {})));
    assert.ok(!agent.hostedKeys().includes(remote.key));
  });

  it('reports a replica that died on the node as lost', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    remote.send([envelope(50, { crash: true })]);
    await waitFor('onLost', () => got.lost.length === 1);
    assert.match(got.lost[0] ?? '', /node node-a reported the replica lost/);
    remote.send([envelope(51, { text: 'after death' })]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got.of(51).length, 0, 'a lost link sends nothing');
  });

  it('refuses placements the node cannot honour, with coded errors', async () => {
    await assert.rejects(link(spec(), 'cuda:0').start(new Collector().events), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SY_NO_REPLICA');
      assert.match(err.message, /does not offer cuda:0/);
      return true;
    });
    await assert.rejects(link(spec({ settings: { failSetup: true } })).start(new Collector().events), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SY_PREDICTOR_ERROR');
      assert.match(err.message, /no weights on this machine/);
      return true;
    });
    const elsewhere = cluster.createLink({ replicaId: 'x/cpu/1', endpoint: 'x', device: 'cpu', node: 'no-such-node', region: 'eu' }, spec());
    await assert.rejects(elsewhere.start(new Collector().events), /node no-such-node is not available/);
    assert.deepEqual(agent.hostedKeys(), [], 'failed placements leave nothing behind');
  });

  it('gives up a replica stopped while it is still being placed, on both sides', async () => {
    const remote = link();
    const starting = remote.start(new Collector().events);
    await remote.stop();
    await assert.rejects(starting, (err: Error & { code?: string }) => err.code === 'SY_NO_REPLICA' && /stopped while starting/.test(err.message));
    await waitFor('the node to drop the abandoned replica', () => !agent.hostedKeys().includes(remote.key));
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!agent.hostedKeys().includes(remote.key), 'the replica did not come back once its setup finished');
  });

  it('abandons a placement on the node when the stop overtakes it', async () => {
    const predictor = await putBundle(await cluster.artifactStore(), predictorFile);
    const place: PlaceRequest = {
      key: 'overtaken1',
      gateway: cluster.gatewayId,
      incarnation: agent.incarnation,
      replicaId: 'test@node-a/cpu/raw',
      endpoint: 'test',
      device: 'cpu',
      region: 'eu',
      predictor,
      settings: {},
      produces: [],
      keepFiles: false,
    };
    const s = gatewayConn.subjects;
    const placed = gatewayConn.nc.request(s.place('node-a'), pack(place), { timeout: 10_000 });
    const stopped = await gatewayConn.nc.request(s.stop('node-a'), pack({ key: 'overtaken1' }), { timeout: 10_000 });
    assert.deepEqual(unpack(stopped.data), { ok: true });
    const reply = unpack<PlaceReply>((await placed).data);
    assert.equal(reply.ok, false);
    assert.match(!reply.ok ? reply.error.message : '', /stopped while it started/);
    assert.ok(!agent.hostedKeys().includes('overtaken1'));
  });

  it('tells the gateway when it sends to a replica the node does not have', async () => {
    const remote = link();
    const got = new Collector();
    await remote.start(got.events);
    // The node forgets the replica (as after a restart) while the gateway still holds the link.
    await gatewayConn.nc.request(gatewayConn.subjects.stop('node-a'), pack({ key: remote.key }));
    remote.send([envelope(60, { text: 'anyone?' })]);
    await waitFor('onLost', () => got.lost.length === 1);
    assert.match(got.lost[0] ?? '', /has no replica/);
  });

  it('loses every open link when the cluster view closes', async () => {
    const conn = await ClusterConnection.connect({ servers: server.url, token: 'cluster-token-1' });
    const view = await RemoteCluster.open(conn);
    await waitFor('node-a in the second view', () => view.membership.isRoutable('node-a'));
    const remote = view.createLink({ replicaId: 'y/cpu/1', endpoint: 'y', device: 'cpu', node: 'node-a', region: 'eu' }, spec());
    const got = new Collector();
    await remote.start(got.events);
    await conn.close();
    await waitFor('onLost', () => got.lost.length === 1);
    assert.match(got.lost[0] ?? '', /cluster connection closed/);
  });
});
