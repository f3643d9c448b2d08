import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ClusterConnection } from '../../workers/cluster/connection.js';
import type { MembershipEvent } from '../../gateway/cluster/membership.js';
import { RemoteCluster } from '../../gateway/cluster/remote-link.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import { NatsServer } from '../helpers/nats-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const AGENT = new URL('../../gateway/cli/node-command.js', import.meta.url).href;
const TOKEN = 'node-agent-token';

// `switchyard node ...` exactly as the CLI wires it.
const CLI = `
import { Command } from 'commander';
import { registerNodeCommand } from ${JSON.stringify(AGENT)};
const program = new Command('switchyard');
registerNodeCommand(program);
program.parseAsync(process.argv.slice(1), { from: 'user' }).catch((err) => {
  console.error('switchyard: ' + err.message);
  process.exit(1);
});
`;

const SLOW_PREDICTOR = `
export default {
  async predict(input) {
    await new Promise((r) => setTimeout(r, input.ms ?? 0));
    return { slept: input.ms ?? 0 };
  },
};
`;

interface NodeProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function spawnNode(args: string[]): NodeProcess {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CLI, 'node', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

function nextEvent(cluster: RemoteCluster, match: (e: MembershipEvent) => boolean, what: string, timeoutMs = 15_000): Promise<MembershipEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const off = cluster.onMembership((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('switchyard node (agent processes)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-nodes-'));
  const slowPredictor = path.join(dir, 'slow.mjs');
  const spawned: NodeProcess[] = [];
  let server: NatsServer;
  let conn: ClusterConnection;
  let cluster: RemoteCluster;

  const node = (name: string, ...extra: string[]) => {
    const p = spawnNode(['--nats', server.url, '--token', TOKEN, '--name', name, '--work-dir', path.join(dir, name), ...extra]);
    spawned.push(p);
    return p;
  };
  const spec = () => ({ predictorPath: slowPredictor, outputDir: path.join(dir, 'out'), settings: {}, produces: [], keepFiles: false });
  const request = (id: number, ms: number) => ({ id, body: Buffer.from(JSON.stringify({ ms })), bodyType: 'json' as const, encoding: 'json' as const, deadline: Date.now() + 20_000 });

  before(async () => {
    writeFileSync(slowPredictor, SLOW_PREDICTOR);
    server = await NatsServer.start({ token: TOKEN });
    conn = await ClusterConnection.connect({ servers: server.url, token: TOKEN, reconnectWaitMs: 100 });
    cluster = await RemoteCluster.open(conn);
  });

  after(async () => {
    for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(spawned.map((p) => p.exited));
    await cluster?.close();
    await conn?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('announces its region and devices, then is dead about a second after SIGKILL, losing its replicas', async (t) => {
    const joined = nextEvent(cluster, (e) => e.type === 'joined' && e.node.name === 'killed', 'the node to join');
    // --poll-us 0: its replicas never poll (an option the agent's strict options would refuse if the flag were not wired).
    const proc = node('killed', '--region', 'eu-west', '--devices', 'cpu', '--max-replicas', '3', '--poll-us', '0');
    const event = await joined;
    assert.ok(event.type === 'joined');
    assert.equal(event.node.region, 'eu-west');
    assert.deepEqual(event.node.devices.map((d) => d.id), ['cpu']);
    assert.equal(event.node.maxReplicas, 3);
    assert.equal(cluster.membership.isRoutable('killed'), true);

    const frames: ReplyFrame[] = [];
    const lost: string[] = [];
    const link = cluster.createLink({ replicaId: 'slow@killed/cpu/1', endpoint: 'slow', device: 'cpu', node: 'killed', region: 'eu-west' }, spec());
    await link.start({ onFrames: (f) => frames.push(...f), onLost: (r) => lost.push(r) });
    link.send([request(1, 0)]);
    await waitFor('the first answer', () => frames.length === 1);
    assert.equal(frames[0]?.t, 'result');

    const dead = nextEvent(cluster, (e) => e.type === 'dead' && e.name === 'killed', 'the node to be declared dead');
    const killedAt = Date.now();
    proc.child.kill('SIGKILL');
    const death = await dead;
    t.diagnostic(`SIGKILL → dead in ${Date.now() - killedAt} ms`);
    assert.ok(death.type === 'dead' && death.reason === 'timeout' && death.incarnation === event.node.incarnation);
    assert.equal(cluster.node('killed'), undefined);
    await waitFor('the replica to be reported lost', () => lost.length === 1);
    assert.match(lost[0] ?? '', /node killed is dead/);
  });

  it('drains on SIGTERM: finishes in-flight work, then leaves and exits cleanly', async () => {
    const joined = nextEvent(cluster, (e) => e.type === 'joined' && e.node.name === 'drained', 'the node to join');
    const proc = node('drained', '--region', 'us-east', '--devices', 'auto');
    await joined;
    const frames: ReplyFrame[] = [];
    const lost: string[] = [];
    const link = cluster.createLink({ replicaId: 'slow@drained/cpu/1', endpoint: 'slow', device: 'cpu', node: 'drained', region: 'us-east' }, spec());
    await link.start({ onFrames: (f) => frames.push(...f), onLost: (r) => lost.push(r) });
    link.send([request(7, 1_500)]);
    await waitFor('the request to be in flight on the node', () => cluster.node('drained')?.inFlight[link.key] === 1);
    const draining = nextEvent(cluster, (e) => e.type === 'draining' && e.name === 'drained', 'draining');
    const left = nextEvent(cluster, (e) => e.type === 'dead' && e.name === 'drained', 'the node to leave');
    proc.child.kill('SIGTERM');
    await draining;
    assert.equal(cluster.membership.isRoutable('drained'), false, 'a draining node takes no new work');
    const gone = await left;
    assert.ok(gone.type === 'dead' && gone.reason === 'left');
    assert.deepEqual(frames.map((f) => f.t), ['result'], 'the in-flight request finished before the node left');
    assert.deepEqual(JSON.parse(Buffer.from((frames[0] as { body: Uint8Array }).body).toString()), { slept: 1_500 });
    assert.equal(await proc.exited, 0);
    assert.match(lost[0] ?? '', /node drained is dead \(left\)/);
  });

  it('makes a node that was frozen past the dead timeout rejoin as a new incarnation', async () => {
    const joined = nextEvent(cluster, (e) => e.type === 'joined' && e.node.name === 'frozen', 'the node to join');
    const proc = node('frozen', '--region', 'eu', '--devices', 'cpu');
    const first = await joined;
    assert.ok(first.type === 'joined');
    const lost: string[] = [];
    const link = cluster.createLink({ replicaId: 'slow@frozen/cpu/1', endpoint: 'slow', device: 'cpu', node: 'frozen', region: 'eu' }, spec());
    await link.start({ onFrames: () => undefined, onLost: (r) => lost.push(r) });

    const dead = nextEvent(cluster, (e) => e.type === 'dead' && e.name === 'frozen', 'the frozen node to be declared dead');
    proc.child.kill('SIGSTOP');
    await dead;
    const stale = nextEvent(cluster, (e) => e.type === 'stale' && e.name === 'frozen', 'a heartbeat from the buried incarnation');
    const rejoined = nextEvent(cluster, (e) => e.type === 'joined' && e.node.name === 'frozen', 'the node to rejoin');
    proc.child.kill('SIGCONT');
    const staleEvent = await stale;
    assert.equal(staleEvent.type === 'stale' && staleEvent.incarnation, first.node.incarnation);
    const second = await rejoined;
    assert.ok(second.type === 'joined');
    assert.notEqual(second.node.incarnation, first.node.incarnation);
    assert.match(lost[0] ?? '', /node frozen is dead \(timeout\)/);
    await waitFor('the rejoined node to be routable', () => cluster.membership.isRoutable('frozen', second.node.incarnation));
  });

  it('refuses to run with a bad credential, saying so', async () => {
    const proc = spawnNode(['--nats', server.url, '--token', 'not-the-token', '--region', 'eu', '--name', 'intruder']);
    spawned.push(proc);
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /refused the credentials/);
    assert.equal(cluster.node('intruder'), undefined);
  });

  it('refuses devices this machine does not have, naming the ones it has', async () => {
    const proc = node('nogpu', '--region', 'eu', '--devices', 'cpu,cuda:99');
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /this machine has no cuda:99 \(it has: cpu/);
    const bad = node('typo', '--region', 'eu', '--devices', 'gpu');
    assert.equal(await bad.exited, 1);
    assert.match(bad.output(), /"gpu" is not a device/);
  });

  it('comes back after the NATS server restarts and takes new replicas', async (t) => {
    const joined = nextEvent(cluster, (e) => e.type === 'joined' && e.node.name === 'survivor', 'the node to join');
    node('survivor', '--region', 'ap-south', '--devices', 'cpu');
    const before = await joined;
    const disconnected = new Promise<void>((resolve) => {
      const off = conn.onStatus((s) => s.type === 'disconnected' && (off(), resolve()));
    });
    await server.stop();
    await disconnected;
    await server.restart();
    await waitFor('the node to be routable again', () => conn.state === 'connected' && cluster.membership.isRoutable('survivor'));
    const kept = before.type === 'joined' && cluster.node('survivor')?.incarnation === before.node.incarnation;
    t.diagnostic(kept ? 'the node kept its incarnation across the restart' : 'the node was buried during the restart and rejoined');
    const frames: ReplyFrame[] = [];
    const link = cluster.createLink({ replicaId: 'slow@survivor/cpu/1', endpoint: 'slow', device: 'cpu', node: 'survivor', region: 'ap-south' }, spec());
    await link.start({ onFrames: (f) => frames.push(...f), onLost: () => undefined });
    link.send([request(9, 0)]);
    await waitFor('an answer after the restart', () => frames.length === 1);
    assert.equal(frames[0]?.t, 'result');
    await link.stop();
  });
});
