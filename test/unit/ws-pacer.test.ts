/** The per-socket request pacer: which requests start, which wait, in what order, and on what estimate. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplySizes } from '../../gateway/http/connection-budget.js';
import { RequestPacer } from '../../gateway/http/ws-pacer.js';

interface Req {
  name: string;
  unary: boolean;
  deadline: number;
}

const FAR = Date.now() + 3_600_000;
const unary = (name: string, deadline = FAR): Req => ({ name, unary: true, deadline });

function pacerWith(budget: number, endpointSizes?: ReplySizes) {
  const started: string[] = [];
  const expired: string[] = [];
  const socket = { unread: 0 };
  const pacer = new RequestPacer<Req>(
    budget,
    { unreadBytes: () => socket.unread, start: (r) => started.push(r.name), expire: (r) => expired.push(r.name) },
    endpointSizes,
  );
  return { pacer, started, expired, socket };
}

test('with nothing known, the first unary request runs alone; its answer sets how many run next, in order of arrival', () => {
  const { pacer, started, socket } = pacerWith(1000);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => unary(n));
  for (const r of [a!, b!, c!, d!]) pacer.admit(r);
  assert.deepEqual(started, ['a']);
  assert.equal(pacer.heldCount, 3);
  // a's answer (400 bytes) is unread: 400 + 400 fits, 400 + 2 × 400 does not.
  socket.unread = 400;
  pacer.answered(a!, 400);
  pacer.release();
  assert.deepEqual(started, ['a', 'b']);
  assert.equal(pacer.expectedBytes(), 400);
  // The client read it: with b running, c fits (2 × 400 ≤ 1000), d does not (3 × 400 > 1000).
  socket.unread = 0;
  pacer.release();
  assert.deepEqual(started, ['a', 'b', 'c']);
  pacer.clear();
});

test("a new socket takes its endpoint's recent answers as the estimate: a slow first request does not hold the others", () => {
  const endpointSizes = new ReplySizes();
  endpointSizes.note(100);
  const { pacer, started } = pacerWith(1000, endpointSizes);
  for (const name of ['slow', 'b', 'c']) pacer.admit(unary(name));
  assert.deepEqual(started, ['slow', 'b', 'c']);
  pacer.clear();
});

test('a socket\'s answers teach its endpoint; a withdrawn request frees its place; a held request past its deadline expires', async () => {
  const endpointSizes = new ReplySizes();
  const { pacer, started, expired } = pacerWith(1000, endpointSizes);
  const first = unary('first');
  pacer.admit(first);
  const late = unary('late', Date.now() - 1);
  const kept = unary('kept');
  pacer.admit(late);
  pacer.admit(kept);
  assert.deepEqual(started, ['first']);
  // Its timer was due at once; this one is due after it.
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(expired, ['late']);
  assert.equal(pacer.isHeld(late), false);
  pacer.withdraw(first);
  pacer.release();
  assert.deepEqual(started, ['first', 'kept'], 'the withdrawn request no longer counts; nothing was known, so one runs');
  pacer.answered(kept, 300);
  assert.equal(endpointSizes.expected(), 300);
  pacer.clear();
});

test('streams are held only while the unread bytes are at the budget, and never for a unary request of unknown size', () => {
  const { pacer, started, socket } = pacerWith(1000);
  pacer.admit(unary('u'));
  pacer.admit({ name: 's', unary: false, deadline: FAR });
  assert.deepEqual(started, ['u', 's']);
  socket.unread = 1000;
  pacer.admit({ name: 's2', unary: false, deadline: FAR });
  assert.deepEqual(started, ['u', 's']);
  socket.unread = 999;
  pacer.release();
  assert.deepEqual(started, ['u', 's', 's2']);
  pacer.clear();
});
