/**
 * Federated gateways: a deployment stored with `switchyard deploy`, served by gateways started
 * with nothing but `--nats` and `--region`, all routing to one replica set per endpoint that one
 * leader per endpoint places and scales. Gateways, node agents and the CLI run as child processes
 * against a real nats-server with JetStream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failures, fixtureModule, killChildren, runLoad, startNodeAgent, waitFor } from '../helpers/cluster.js';
import { deploy, runCli, startFederatedGateway, status, type GatewayProcess } from '../helpers/federation.js';
import { postJson } from '../helpers/gateway.js';
import { NatsServer } from '../helpers/nats-server.js';

interface Described {
  federation: { gateway: string; endpoints: Record<string, { leader: { gateway: string } | null; replicas: Array<{ key: string; state: string }> }>; gateways: Array<{ id: string; region: string }> };
}

const describeOf = async (gw: GatewayProcess): Promise<Described> => (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as Described;

function readyKeys(s: { replicas: Array<{ key: string; state: string }> }): string[] {
  return s.replicas.filter((r) => r.state === 'ready').map((r) => r.key).sort();
}

describe('federated gateways', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-federation-'));
  let server: NatsServer;
  let predictor: string;
  const gateways: GatewayProcess[] = [];

  /** The gateway process leading `endpoint`, and the others. */
  async function leaderOf(endpoint: string): Promise<{ leader: GatewayProcess; others: GatewayProcess[] }> {
    const live = gateways.filter((g) => g.child.exitCode === null && g.child.signalCode === null);
    const ids = await Promise.all(live.map(async (g) => (await describeOf(g)).federation.gateway));
    const s = await status(server.url);
    const leaderId = s.endpoints[endpoint]?.leader?.gateway;
    const i = ids.indexOf(leaderId ?? '');
    assert.ok(i >= 0, `a live gateway leads ${endpoint} (leader ${leaderId}, gateways ${ids.join(', ')})`);
    return { leader: live[i]!, others: live.filter((_, j) => j !== i) };
  }

  before(async () => {
    predictor = fixtureModule('cluster-predictor', dir);
    server = await NatsServer.start();
    const nodes = [
      startNodeAgent({ nats: server.url, name: 'eu-1', region: 'eu', maxReplicas: 4, workDir: dir }),
      startNodeAgent({ nats: server.url, name: 'eu-2', region: 'eu', maxReplicas: 4, workDir: dir }),
      startNodeAgent({ nats: server.url, name: 'us-1', region: 'us', maxReplicas: 4, workDir: dir }),
    ];
    await Promise.all(nodes.map((n) => n.up));
    await deploy(server.url, dir, {
      echo: { predictor, replicas: 2, regions: ['eu'] },
      scaled: {
        predictor,
        replicas: 1,
        max_concurrency: 2,
        autoscaling: { min_replicas: 1, max_replicas: 4, target_concurrency_per_replica: 2, window_size_secs: 1, scaledown_delay_secs: 600, tick_ms: 200 },
      },
    });
    gateways.push(await startFederatedGateway(server.url, 'eu'), await startFederatedGateway(server.url, 'us'));
    await waitFor(
      'both endpoints to have their replicas ready',
      async () => {
        const s = await status(server.url);
        return readyKeys(s.endpoints.echo ?? { replicas: [] }).length === 2 && readyKeys(s.endpoints.scaled ?? { replicas: [] }).length === 1;
      },
      60_000,
    );
  });

  after(async () => {
    await killChildren();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the stored deployment from gateways started with only --nats and --region', async () => {
    for (const gw of gateways) {
      await waitFor(`gateway ${gw.region} to route to both echo replicas`, async () => readyKeys((await describeOf(gw)).federation.endpoints.echo!).length === 2 && (await postJson(`${gw.url}/inference/echo`, { value: 1 })).status === 200, 20_000);
    }
  });

  it('routes every gateway to the same replica set, placed once by one leader', async () => {
    const seen = new Map<string, Set<string>>();
    for (const gw of gateways) {
      const out = await runLoad({ url: `${gw.url}/inference/echo`, total: 200, concurrency: 8, body: { value: 'x' }, keepAnswers: true });
      assert.equal(failures(out), 0, JSON.stringify(out.failed));
      seen.set(gw.region, new Set(out.answers.map((a) => (a as { replica: string }).replica)));
    }
    const s = await status(server.url);
    const ids = s.endpoints.echo!.replicas.map((r) => r.replicaId).sort();
    assert.equal(ids.length, 2, 'two replicas, not two per gateway');
    assert.deepEqual([...seen.get('eu')!].sort(), ids);
    assert.deepEqual([...seen.get('us')!].sort(), ids);
    // regions: [eu] puts both on eu nodes.
    assert.ok(s.endpoints.echo!.replicas.every((r) => r.node.startsWith('eu-')));
    const descriptions = await Promise.all(gateways.map(describeOf));
    const leaders = new Set(descriptions.map((d) => d.federation.endpoints.echo!.leader?.gateway));
    assert.equal(leaders.size, 1, 'every gateway names the same leader');
    assert.deepEqual(descriptions[0]!.federation.gateways.map((g) => g.region).sort(), ['eu', 'us']);
  });

  it('prints the federation with switchyard status', async () => {
    const text = await runCli(['status', '--nats', server.url]);
    assert.match(text, /gateways \(2\):/);
    assert.match(text, /endpoint echo: version \w+, desired 2, leader \S+ \((eu|us), token \d+\)/);
    assert.match(text, /echo@eu-\d\/cpu\/\S+\s+ready\s+node eu-\d \(eu\)/);
  });

  it('scales on the load of every gateway, not just the leader', async () => {
    const { others } = await leaderOf('scaled');
    const follower = others[0]!;
    // 8 requests held at once through a gateway that does not lead: the leader sees them all.
    const load = runLoad({ url: `${follower.url}/inference/scaled`, total: 400, concurrency: 8, body: { ms: 40 } });
    await waitFor('the leader to scale up on a follower\'s load', async () => ((await status(server.url)).endpoints.scaled?.desired ?? 0) >= 3, 30_000);
    const out = await load;
    assert.equal(failures(out), 0, JSON.stringify(out.failed));
  });

  it('keeps leading when the leader is paused past its lease: it resumes as a follower, no replica exists twice', async () => {
    const { leader, others } = await leaderOf('echo');
    const before = (await status(server.url)).endpoints.echo!;
    leader.child.kill('SIGSTOP');
    try {
      await waitFor('another gateway to take the lease', async () => {
        const s = await status(server.url);
        return s.endpoints.echo!.leader!.gateway !== before.leader!.gateway;
      }, 20_000);
      const out = await runLoad({ url: `${others[0]!.url}/inference/echo`, total: 200, concurrency: 8, body: { value: 'y' } });
      assert.equal(failures(out), 0, JSON.stringify(out.failed));
    } finally {
      leader.child.kill('SIGCONT');
    }
    await waitFor('the resumed gateway to step down', () => /no longer leading endpoint/.test(leader.output()), 20_000);
    const after = (await status(server.url)).endpoints.echo!;
    assert.deepEqual(readyKeys(after), readyKeys(before), 'the same two replicas, none re-placed or doubled');
    assert.notEqual(after.leader!.token, before.leader!.token);
    const out = await runLoad({ url: `${leader.url}/inference/echo`, total: 100, concurrency: 4, body: { value: 'z' } });
    assert.equal(failures(out), 0, JSON.stringify(out.failed));
  });

  it('loses no request of the other gateways when a gateway is SIGKILLed, and leadership moves', async () => {
    const { leader, others } = await leaderOf('echo');
    const survivor = others[0]!;
    const before = (await status(server.url)).endpoints.echo!;
    const load = runLoad({
      url: `${survivor.url}/inference/echo`,
      total: 1500,
      concurrency: 8,
      body: { value: 'k' },
      onProgress: (n) => {
        if (n === 300) void leader.kill('SIGKILL');
      },
    });
    const out = await load;
    assert.equal(failures(out), 0, JSON.stringify(out.failed));
    await waitFor('leadership to move to the survivor', async () => (await status(server.url)).endpoints.echo!.leader!.gateway !== before.leader!.gateway, 20_000);
    assert.deepEqual(readyKeys((await status(server.url)).endpoints.echo!), readyKeys(before), 'the replicas kept running');
  });

  it('rolls out a changed endpoint with no failed request; afterwards only the new version answers', async () => {
    const gw = gateways.find((g) => g.child.exitCode === null && g.child.signalCode === null)!;
    const old = (await status(server.url)).endpoints.echo!;
    let rolling = true;
    const outcome = { ok: 0, failed: [] as string[] };
    const lane = async () => {
      while (rolling) {
        const res = await postJson(`${gw.url}/inference/echo`, { value: 'r' });
        if (res.status === 200) outcome.ok++;
        else outcome.failed.push(`${res.status} ${res.text}`);
      }
    };
    const lanes = Promise.all(Array.from({ length: 6 }, lane));
    await deploy(server.url, dir, { echo: { predictor, replicas: 2, regions: ['eu'], settings: { release: 2 } }, scaled: { predictor, replicas: 1 } }, 'app-v2.yaml');
    try {
      await waitFor('the rollout to finish', async () => {
        const e = (await status(server.url)).endpoints.echo!;
        return e.version !== old.version && e.replicas.length === 2 && e.replicas.every((r) => r.version === e.version && r.state === 'ready');
      }, 60_000);
    } finally {
      rolling = false;
      await lanes;
    }
    assert.deepEqual(outcome.failed, []);
    assert.ok(outcome.ok > 0);
    const fresh = (await status(server.url)).endpoints.echo!.replicas.map((r) => r.replicaId);
    assert.ok(old.replicas.every((r) => !fresh.includes(r.replicaId)), 'new replicas');
    await waitFor('the gateway to route to the new replicas only', async () => readyKeys((await describeOf(gw)).federation.endpoints.echo!).join() === readyKeys((await status(server.url)).endpoints.echo!).join(), 10_000);
    const after = await runLoad({ url: `${gw.url}/inference/echo`, total: 200, concurrency: 6, body: { value: 'n' }, keepAnswers: true });
    assert.equal(failures(after), 0);
    assert.ok(after.answers.every((a) => fresh.includes((a as { replica: string }).replica)), 'every answer from a new replica');
  });
});
