/**
 * The gateway's NATS server goes away while it serves: requests only node agents could serve must
 * be refused at once (503 SY_CLUSTER_UNAVAILABLE + Retry-After), local replicas keep serving.
 */
import { performance } from 'node:perf_hooks';
import { NatsServer } from '../../test/helpers/nats-server.js';
import type { ChaosCase } from './case.js';

let nats: NatsServer | undefined;

export const natsDown: ChaosCase = {
  name: 'NATS down: 20 requests to a remote-only endpoint after nats-server stops',
  expected: 'all 503 SY_CLUSTER_UNAVAILABLE with Retry-After, each < 100 ms; the local shared endpoint keeps serving',
  endpoint: { placement: 'local' },
  endpoints: { far: { placement: 'remote' } },
  readyPath: '/healthz',
  async prepare() {
    nats = await NatsServer.start();
    return { cluster: { nats: nats.url } };
  },
  async dispose() {
    await nats?.dispose();
    nats = undefined;
  },
  durationMs: 0,
  async run({ url }) {
    await nats!.stop();
    // Until the gateway has noticed the loss, a request may still be waiting for a node; wait for the gauge (a wait, not a target).
    const noticedAt = performance.now();
    while (performance.now() - noticedAt < 10_000 && !/^switchyard_cluster_connected 0$/m.test(await (await fetch(`${url}/metrics`)).text())) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const noticedMs = performance.now() - noticedAt;
    const latencies: number[] = [];
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await fetch(`${url}/inference/far`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-timeout-ms': '20000' }, body: JSON.stringify({ value: i }) });
      const text = await res.text();
      latencies.push(performance.now() - t0);
      if (res.status === 503 && Number(res.headers.get('retry-after')) >= 1 && text.includes('SY_CLUSTER_UNAVAILABLE')) refused++;
    }
    latencies.sort((a, b) => a - b);
    const max = latencies[latencies.length - 1]!;
    return `loss noticed in ${Math.round(noticedMs)} ms; ${refused}/20 503 SY_CLUSTER_UNAVAILABLE + Retry-After; p50 ${latencies[10]!.toFixed(1)} ms, max ${max.toFixed(1)} ms${max >= 100 ? ' (MISSED target)' : ''}`;
  },
};
