/** A predictor leaves a rejected promise behind while another request sleeps on the same replica. */
import type { ChaosCase } from './case.js';

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
};

export const unhandledRejection: ChaosCase = {
  name: 'unhandled rejection beside a 400 ms request, replicas 1',
  expected: 'both 200; unhandled_rejections 1 in /v1/endpoints; the replica keeps serving (replaced.lost 0)',
  endpoint: { replicas: 1, idempotent: false },
  durationMs: 0,
  async run({ url, endpoint }) {
    const target = `${url}/inference/${endpoint}`;
    const sleeper = post(target, { action: 'sleep', ms: 400 });
    const leak = await post(target, { action: 'leak' });
    const slept = await sleeper;
    // The count arrives from the worker thread on its own message; give it a moment (a wait, not a target).
    let counted = 0;
    let lost = NaN;
    for (let i = 0; i < 50; i++) {
      const listing = (await (await fetch(`${url}/v1/endpoints`)).json()) as { endpoints: { name: string; unhandled_rejections: number; replaced: { lost: number } }[] };
      const ep = listing.endpoints.find((e) => e.name === endpoint);
      counted = ep?.unhandled_rejections ?? 0;
      lost = ep?.replaced.lost ?? NaN;
      if (counted >= 1) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return `leak ${leak}, sleeper ${slept}; unhandled_rejections ${counted}; replaced.lost ${lost}`;
  },
};
