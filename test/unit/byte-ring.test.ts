import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createRing, RingReader, RingWriter } from '../../bench/lib/byte-ring.js';

const record = (n: number, size: number): Uint8Array => new Uint8Array(size).fill(n & 0xff);

test('records come out whole and in order across the wrap, and a full ring refuses a write', () => {
  const ring = createRing(64);
  const writer = new RingWriter(ring);
  const reader = new RingReader(ring);
  const seen: number[][] = [];
  const take = (r: Uint8Array): void => {
    seen.push([...r]);
  };
  // 4 + 20 rounded to 24 bytes each: two fit, the third does not until the reader frees room.
  assert.equal(writer.write(record(1, 21)), true);
  assert.equal(writer.write(record(2, 21)), true);
  assert.equal(writer.write(record(3, 21)), false);
  assert.equal(reader.drain(take), 2);
  // The next record does not fit in the 16 bytes left at the end: it wraps to the start.
  assert.equal(writer.write(record(3, 21)), true);
  assert.equal(writer.write(record(4, 5)), true);
  assert.equal(reader.drain(take), 2);
  assert.equal(reader.pending, false);
  assert.deepEqual(
    seen.map((r) => [r.length, r[0]]),
    [
      [21, 1],
      [21, 2],
      [21, 3],
      [5, 4],
    ],
  );
  assert.throws(() => createRing(10), /multiple of 4/);
});

test('a reader sleeping with waitAsync wakes for each write from another thread', async () => {
  // Small enough that the writer fills it and wraps many times.
  const ring = createRing(64);
  const reader = new RingReader(ring);
  const source = `
    const { workerData } = require('node:worker_threads');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    import(workerData.module).then(({ RingWriter }) => {
      const writer = new RingWriter(workerData.ring);
      for (let i = 1; i <= 200; i++) {
        const record = new Uint8Array(1 + (i % 7)).fill(i & 0xff);
        while (!writer.write(record)) Atomics.wait(pause, 0, 0, 1);
      }
    });
  `;
  const got: number[] = [];
  const done = new Promise<void>((resolve) => {
    const loop = (): void => {
      for (;;) {
        reader.drain((r) => {
          assert.ok(r.every((b) => b === r[0]), 'a record is never torn');
          got.push(r[0]!);
        });
        if (got.length === 200) return resolve();
        const sleeping = reader.sleepAsync();
        if (sleeping) {
          void sleeping.then(loop);
          return;
        }
      }
    };
    loop();
  });
  const worker = new Worker(source, { eval: true, workerData: { ring, module: new URL('../../bench/lib/byte-ring.js', import.meta.url).href } });
  await done;
  await worker.terminate();
  assert.deepEqual(
    got,
    Array.from({ length: 200 }, (_, i) => (i + 1) & 0xff),
  );
});
