/** Every request kills its replica thread: restarts must back off and clients get 503 + Retry-After, not a thread each. */
import type { ChaosCase } from './case.js';

const CLIENTS = 16;

export const crashLoop: ChaosCase = {
  name: `crash loop: ${CLIENTS} clients sending {"action":"exit"} for 5 s, replicas 1`,
  expected: '503 + Retry-After dominates (restarts back off); few thread deaths (replaced.lost ≪ requests); others on the endpoint fail meanwhile',
  endpoint: { replicas: 1 },
  durationMs: 5000,
  async run({ url, endpoint, signal }) {
    const statuses = new Map<string, number>();
    let requests = 0;
    let withRetryAfter = 0;
    const client = async () => {
      while (!signal.aborted) {
        requests++;
        try {
          const res = await fetch(`${url}/inference/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-timeout-ms': '10000' }, body: '{"action":"exit"}' });
          await res.arrayBuffer();
          const key = String(res.status);
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (res.status === 503 && Number(res.headers.get('retry-after')) >= 1) withRetryAfter++;
        } catch {
          statuses.set('error', (statuses.get('error') ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    const readiness = (await (await fetch(`${url}/readyz`)).json()) as { endpoints: Record<string, { replaced: { lost: number } }> };
    const lost = readiness.endpoints[endpoint]?.replaced.lost ?? NaN;
    const counts = [...statuses].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${n}×${s}`);
    return `${requests} requests: ${counts.join(', ')} (${withRetryAfter} 503s with Retry-After); replaced.lost ${lost}`;
  },
};
