/** An endpoint whose predictor setup() always fails, beside a healthy one: its clients must get a coded 503 at once, without the cause. */
import { performance } from 'node:perf_hooks';
import type { ChaosCase } from './case.js';

const SECRET = 'cannot open /secret/weights.bin';

export const failingSetup: ChaosCase = {
  name: 'failing setup(): 20 requests to an endpoint that never starts',
  expected: 'all 503 SY_NO_REPLICA with Retry-After; p50 and max < 100 ms; no body names the setup() error; the shared endpoint unaffected',
  endpoints: { broken: { settings: { fail_setup: SECRET } } },
  readyPath: '/healthz',
  durationMs: 0,
  async run({ url }) {
    const latencies: number[] = [];
    let refused = 0;
    let leaked = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await fetch(`${url}/inference/broken`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-timeout-ms': '20000' }, body: JSON.stringify({ value: i }) });
      const text = await res.text();
      latencies.push(performance.now() - t0);
      if (res.status === 503 && Number(res.headers.get('retry-after')) >= 1 && text.includes('SY_NO_REPLICA')) refused++;
      if (/secret|weights/.test(text)) leaked++;
    }
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length / 2)]!;
    const max = latencies[latencies.length - 1]!;
    const missed = max >= 100 ? ' (MISSED target)' : '';
    return `${refused}/20 503 + Retry-After; p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms${missed}; ${leaked} bodies name the setup() error`;
  },
};
