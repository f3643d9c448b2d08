/** Seven rounds of 10 concurrent 20 MB request bodies. */
import type { ChaosCase } from './case.js';

export const largeBodies: ChaosCase = {
  name: '7 × 10 concurrent 20 MB bodies',
  expected: 'all answered; RSS back within 1.5× of before within 30 s',
  endpoint: { max_body_bytes: 32 * 1024 * 1024 },
  durationMs: 0,
  async run({ url, endpoint }) {
    const body = JSON.stringify({ value: 'x'.repeat(20 * 1024 * 1024) });
    const statuses = new Map<number, number>();
    for (let round = 0; round < 7; round++) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const res = await fetch(`${url}/inference/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        }),
      );
    }
    return [...statuses].map(([s, n]) => `${n}×${s}`).join(', ');
  },
};
