/**
 * A federation across two regions on a three-server NATS cluster (two servers in eu, one in us,
 * routes between the regions through a TCP proxy that delays every chunk by 20 ms each way):
 * each gateway prefers its own region's replicas, a region whose nodes all die is spilled over
 * with no failed unary request, and losing one NATS server under load fails no request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failures, fixtureModule, killChildren, runLoad, startNodeAgent, waitFor, type NodeAgentHandle } from '../helpers/cluster.js';
import { deploy, startFederatedGateway, status, type GatewayProcess } from '../helpers/federation.js';
import { NatsCluster } from '../helpers/nats-cluster.js';

const regionOf = (answer: unknown): string => (/@(eu|us)-/.exec((answer as { replica?: string }).replica ?? '')?.[1] ?? 'none');

function share(answers: unknown[], region: string): number {
  return answers.filter((a) => regionOf(a) === region).length / Math.max(1, answers.length);
}

describe('a federation across regions', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-federation-regions-'));
  let nats: NatsCluster;
  let eu: GatewayProcess;
  let us: GatewayProcess;
  const nodes: NodeAgentHandle[] = [];

  before(async () => {
    nats = await NatsCluster.start(['eu', 'eu', 'us'], 20);
    // Servers are dialled in the order given: the eu gateway and node eu-1 sit on n2 (the one the
    // NATS test kills) with n1 to fail over to, eu-2 on n1.
    const viaN2 = `${nats.url(1)},${nats.url(0)}`;
    const viaN1 = `${nats.url(0)},${nats.url(1)}`;
    const predictor = fixtureModule('cluster-predictor', dir);
    nodes.push(
      startNodeAgent({ nats: viaN2, name: 'eu-1', region: 'eu', maxReplicas: 1, workDir: dir }),
      startNodeAgent({ nats: viaN1, name: 'eu-2', region: 'eu', maxReplicas: 1, workDir: dir }),
      startNodeAgent({ nats: nats.url(2), name: 'us-1', region: 'us', maxReplicas: 1, workDir: dir }),
    );
    await Promise.all(nodes.map((n) => n.up));
    await deploy(viaN1, dir, { geo: { predictor, replicas: 3, max_concurrency: 4 } });
    eu = await startFederatedGateway(viaN2, 'eu');
    us = await startFederatedGateway(nats.url(2), 'us');
    for (const gw of [eu, us]) {
      await waitFor(`gateway ${gw.region} to route to all three replicas`, async () => {
        const d = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as { federation: { endpoints: Record<string, { replicas: Array<{ state: string }> }> }; endpoints: Array<{ name: string; replicas: Array<{ state: string }> }> };
        return (d.endpoints.find((e) => e.name === 'geo')?.replicas.filter((r) => r.state === 'ready').length ?? 0) === 3;
      }, 60_000);
    }
  });

  after(async () => {
    await killChildren();
    await nats?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers from the near region under inter-region delay', async () => {
    const fromEu = await runLoad({ url: `${eu.url}/inference/geo`, total: 200, concurrency: 2, body: { value: 1 }, keepAnswers: true });
    const fromUs = await runLoad({ url: `${us.url}/inference/geo`, total: 200, concurrency: 2, body: { value: 1 }, keepAnswers: true });
    assert.equal(failures(fromEu) + failures(fromUs), 0);
    assert.ok(share(fromEu.answers, 'eu') > 0.9, `eu gateway: ${share(fromEu.answers, 'eu')} from eu`);
    assert.ok(share(fromUs.answers, 'us') > 0.9, `us gateway: ${share(fromUs.answers, 'us')} from us`);
  });

  it('loses no request when one NATS server of the three is killed under load', async () => {
    // Every request sent before, during and after the kill counts. The eu gateway and node eu-1
    // were on n2: the gateway holds requests while it fails over and sends again those whose
    // answers may have been lost; it sends again what was in flight on eu-1 once eu-1 says it
    // reconnected.
    const out = await runLoad({
      url: `${eu.url}/inference/geo`,
      total: 1200,
      concurrency: 4,
      body: { value: 3 },
      headers: { 'x-request-timeout-ms': '15000' },
      onProgress: (n) => {
        if (n === 200) void nats.kill(1);
      },
    });
    assert.equal(failures(out), 0, JSON.stringify(out.failed));
    assert.equal(out.ok, 1200);
    // The kill did cut both off (else this test proves nothing).
    assert.match(eu.output(), /NATS connection lost/);
    assert.match(nodes[0]!.output(), /reconnected to NATS/);
  });

  it('spills a region whose nodes all died to the other region with no failed unary request', async () => {
    const load = runLoad({
      url: `${eu.url}/inference/geo`,
      total: 1500,
      concurrency: 4,
      body: { value: 4 },
      keepAnswers: true,
      onProgress: (n) => {
        if (n === 200) for (const node of nodes.filter((x) => x.name.startsWith('eu-'))) void node.kill('SIGKILL');
      },
    });
    const out = await load;
    assert.equal(failures(out), 0, JSON.stringify(out.failed));
    assert.equal(regionOf(out.answers[out.answers.length - 1]), 'us', 'the last answers come from us');
    // JetStream may still be electing leaders after the server loss above: a status read that times out is read again.
    const onlyUs = async () => ((await status(nats.url(2))).endpoints.geo?.replicas ?? []).every((r) => r.node === 'us-1');
    await waitFor('the leader to drop the dead replicas', () => onlyUs().catch(() => false), 30_000);
  });
});
