/**
 * A replica thread parks while idle (workers/pool/idle-park.ts). What a user must never notice:
 * requests after any idle time are served, a predictor's own timers keep running while its replica
 * waits for work (a ref'd timer stops the park; an unref'd one fires after at most PARK_MAX_MS),
 * and stopping a parked replica runs its teardown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ThreadReplicaLink } from '../../workers/pool/thread-link.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import { PARK_MAX_MS } from '../../workers/pool/idle-park.js';
import { tempDir } from '../helpers/gateway.js';

const dir = tempDir('sy-park-');
const teardownMark = path.join(dir, 'teardown-ran');
const predictorPath = path.join(dir, 'ticker.mjs');
writeFileSync(
  predictorPath,
  `import { writeFileSync } from 'node:fs';
let refTicks = 0;
let unrefTicks = 0;
let ref;
export default {
  setup(ctx) {
    if (ctx.settings.refTimer) ref = setInterval(() => refTicks++, 2);
    setInterval(() => unrefTicks++, 2).unref();
  },
  predict() {
    return { refTicks, unrefTicks };
  },
  teardown() {
    clearInterval(ref);
    writeFileSync(${JSON.stringify(teardownMark)}, 'yes');
  },
};
`,
);

async function startLink(settings: Record<string, unknown>): Promise<{ link: ThreadReplicaLink; ask: () => Promise<{ refTicks: number; unrefTicks: number }> }> {
  const link = new ThreadReplicaLink(
    { replicaId: 'ticker/cpu/1', endpoint: 'ticker', device: 'cpu', node: 'local', region: 'here' },
    { predictorPath, outputDir: path.join(dir, 'out'), settings, produces: [], keepFiles: false },
  );
  const waiting = new Map<number, (frame: ReplyFrame) => void>();
  await link.start({
    onFrames: (frames) => {
      for (const frame of frames) waiting.get(frame.id)?.(frame);
    },
    onLost: (reason) => assert.fail(`the replica was lost: ${reason}`),
  });
  let id = 0;
  const ask = async () => {
    const n = ++id;
    const frame = await new Promise<ReplyFrame>((resolve) => {
      waiting.set(n, resolve);
      link.send([{ id: n, encoding: 'json', deadline: Date.now() + 30_000, body: Buffer.from('{}'), bodyType: 'json' }]);
    });
    waiting.delete(n);
    assert.equal(frame.t, 'result', JSON.stringify(frame));
    return JSON.parse(Buffer.from((frame as Extract<ReplyFrame, { t: 'result' }>).body).toString()) as { refTicks: number; unrefTicks: number };
  };
  return { link, ask };
}

test('an idle replica answers after short and long pauses, and its timers run while it waits', async () => {
  const { link, ask } = await startLink({ refTimer: true });
  const first = await ask();
  for (let i = 0; i < 20; i++) await ask();
  // Longer than a park: the thread has parked and come back at least once.
  await delay(PARK_MAX_MS * 3);
  const later = await ask();
  assert.ok(later.refTicks > first.refTicks, `a ref'd timer ran while the replica was idle (${first.refTicks} → ${later.refTicks})`);
  assert.ok(later.unrefTicks > first.unrefTicks, `an unref'd timer ran too (${first.unrefTicks} → ${later.unrefTicks})`);
  await link.stop();
});

test("with only an unref'd timer the replica parks, and the timer still fires", async () => {
  const { link, ask } = await startLink({});
  const first = await ask();
  await ask();
  await delay(PARK_MAX_MS * 4);
  const later = await ask();
  assert.ok(later.unrefTicks > first.unrefTicks, `an unref'd timer fired while the replica was parked (${first.unrefTicks} → ${later.unrefTicks})`);
  await link.stop();
  assert.ok(existsSync(teardownMark), 'stopping a parked replica ran its teardown (the stop task reached the thread)');
});

const waiterPath = path.join(dir, 'waiter.mjs');
writeFileSync(
  waiterPath,
  `export default {
  async predict(input, req) {
    await new Promise((resolve) => setImmediate(resolve));
    return { aborted: req.signal.aborted };
  },
};
`,
);

test('a request handed to a waiting replica through its mailbox and then cancelled on its port is cancelled, not answered', async () => {
  const link = new ThreadReplicaLink(
    { replicaId: 'waiter/cpu/1', endpoint: 'waiter', device: 'cpu', node: 'local', region: 'here' },
    { predictorPath: waiterPath, outputDir: path.join(dir, 'out'), settings: {}, produces: [], keepFiles: false },
  );
  const frames: ReplyFrame[] = [];
  let answered: ((id: number) => void) | undefined;
  await link.start({
    onFrames: (batch) => {
      frames.push(...batch);
      for (const frame of batch) if (frame.t === 'result') answered?.(frame.id);
    },
    onLost: (reason) => assert.fail(`the replica was lost: ${reason}`),
  });
  const request = (id: number) => ({ id, encoding: 'json' as const, deadline: Date.now() + 30_000, body: Buffer.from('{}'), bodyType: 'json' as const });
  const answer = (id: number) => new Promise<void>((resolve) => (answered = (got) => got === id && resolve()));

  try {
    const first = answer(1);
    link.send([request(1)]);
    await first;
    // Idle now: the thread waits with its mailbox open.
    await delay(PARK_MAX_MS / 5);
    const before = link.mailboxed.requests;
    link.send([request(2)]);
    link.control({ t: 'cancel', id: 2 });
    assert.equal(link.mailboxed.requests, before + 1, 'the request went through the mailbox, the cancel after it on the port');
    // A later request's answer comes after anything request 2 produced.
    const third = answer(3);
    link.send([request(3)]);
    await third;
    assert.ok(frames.some((f) => f.t === 'cancelled' && f.id === 2), 'the cancel reached the thread');
    assert.equal(frames.filter((f) => f.t === 'result' && f.id === 2).length, 0, 'the cancel was read after the request it cancels: no answer for it');
  } finally {
    await link.stop({ now: true });
  }
});
