/** Five concurrent 100 MB results, read as fast as the client can, while /healthz is polled. */
import { performance } from 'node:perf_hooks';
import type { ChaosCase } from './case.js';

export const largeResults: ChaosCase = {
  name: '5 concurrent 100 MB results',
  expected: 'all answered whole; /healthz never stalls long; RSS back within 1.5× within 30 s',
  durationMs: 0,
  async run({ url, endpoint }) {
    let polling = true;
    let worstHealthMs = 0;
    const poll = (async () => {
      while (polling) {
        const t0 = performance.now();
        await (await fetch(`${url}/healthz`)).text();
        worstHealthMs = Math.max(worstHealthMs, performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const sizes = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const res = await fetch(`${url}/inference/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'bytes', size: 100 * 1024 * 1024 }) });
        return res.status === 200 ? (await res.arrayBuffer()).byteLength : -res.status;
      }),
    );
    polling = false;
    await poll;
    return `${sizes.filter((n) => n === 100 * 1024 * 1024).length}/5 whole; worst /healthz ${worstHealthMs.toFixed(0)} ms`;
  },
};
