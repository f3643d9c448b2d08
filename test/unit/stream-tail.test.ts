import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamTail } from '../../gateway/endpoints/stream-tail.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const seqs = (chunks: Array<{ seq: number }> | undefined) => chunks?.map((c) => c.seq);

test('a tail gives the chunks after a seq, and nothing when the client has them all', () => {
  const tail = new StreamTail(1000);
  for (let seq = 1; seq <= 5; seq++) tail.push(seq, bytes(10, seq));
  assert.deepEqual(seqs(tail.after(2, 5)), [3, 4, 5]);
  assert.deepEqual(seqs(tail.after(0, 5)), [1, 2, 3, 4, 5]);
  assert.deepEqual(tail.after(5, 5), []);
  assert.equal(tail.bytes, 50);
});

test('the oldest chunks leave past the byte bound; asking for one of them says it is gone', () => {
  const tail = new StreamTail(25);
  for (let seq = 1; seq <= 5; seq++) tail.push(seq, bytes(10, seq));
  assert.equal(tail.bytes, 20);
  assert.deepEqual(seqs(tail.after(3, 5)), [4, 5]);
  assert.equal(tail.after(2, 5), undefined);
});

test('a chunk is copied: the frame batch it came in is not kept alive, nor changed under it', () => {
  const batch = bytes(100, 7);
  const tail = new StreamTail(1000);
  tail.push(1, batch.subarray(10, 20));
  batch.fill(0);
  const [chunk] = tail.after(0, 1)!;
  assert.equal(chunk!.data.buffer.byteLength, 10);
  assert.deepEqual([...chunk!.data], Array(10).fill(7));
});
