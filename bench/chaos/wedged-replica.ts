/** A request spins forever on its replica thread; the replica must be replaced and the endpoint keep serving. */
import { performance } from 'node:perf_hooks';
import type { ChaosCase } from './case.js';

const TIMEOUT_MS = 1000;

interface Readiness {
  endpoints: Record<string, { ready: number; replaced: { wedged: number } }>;
}

export const wedgedReplica: ChaosCase = {
  name: 'wedged replica (synchronous endless loop), replicas 2',
  expected: `504 for the spinning request; /readyz shows replaced.wedged 1 and 2 ready within timeout_ms + 2 s (${TIMEOUT_MS + 2000} ms); ≥99 of the next 100 requests 200`,
  endpoint: { replicas: 2, timeout_ms: TIMEOUT_MS },
  durationMs: 0,
  async run({ url, endpoint }) {
    const t0 = performance.now();
    const spin = fetch(`${url}/inference/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"action":"spin"}' }).then(async (res) => {
      await res.arrayBuffer();
      return res.status;
    });
    let replacedMs = NaN;
    while (performance.now() - t0 < 30_000) {
      const body = (await (await fetch(`${url}/readyz`)).json()) as Readiness;
      const ep = body.endpoints[endpoint];
      if (ep && ep.replaced.wedged === 1 && ep.ready === 2) {
        replacedMs = performance.now() - t0;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const spinStatus = await spin;
    // The next 100, 10 at a time.
    const statuses = new Map<number, number>();
    let ok = 0;
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const res = await fetch(`${url}/inference/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: batch * 10 + i }) });
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 200) ok++;
        }),
      );
    }
    const others = [...statuses].filter(([s]) => s !== 200).map(([s, n]) => `${n}×${s}`);
    const replaced = Number.isNaN(replacedMs) ? 'not replaced within 30 s' : `replaced in ${Math.round(replacedMs)} ms${replacedMs > TIMEOUT_MS + 2000 ? ' (MISSED target)' : ''}`;
    return `spin answered ${spinStatus}; ${replaced}; ${ok}/100 then 200${others.length ? ` (${others.join(', ')})` : ''}`;
  },
};
