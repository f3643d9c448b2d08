import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asciiChunks, forEachChunk, joinChunks, RUN_MAX_BYTES, runLength, type ChunkRun } from '../../workers/protocol/chunk-run.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import { ReplyOutbox } from '../../workers/pool/reply-outbox.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** Every chunk of a run frame as text, in order. */
function texts(frame: ReplyFrame): string[] {
  assert.equal(frame.t, 'chunk');
  const f = frame as Extract<ReplyFrame, { t: 'chunk' }>;
  const out: string[] = [];
  forEachChunk({ bytes: f.data, sizes: f.sizes, firstSeq: 1 }, (bytes) => out.push(Buffer.from(bytes).toString()));
  return out;
}

function collecting(): { outbox: ReplyOutbox; batches: ReplyFrame[][] } {
  const batches: ReplyFrame[][] = [];
  return { outbox: new ReplyOutbox((frames) => batches.push(frames)), batches };
}

test('the chunks a stream yields in one turn leave as one frame, every chunk kept in order, streams apart', async () => {
  const { outbox, batches } = collecting();
  outbox.push({ t: 'start', id: 1 });
  outbox.chunk(1, 'héllo ', undefined);
  outbox.chunk(2, new Uint8Array([0xff, 0x00]), undefined);
  outbox.chunk(1, new Uint8Array([0x77]), undefined);
  outbox.chunk(1, '', undefined);
  outbox.chunk(1, 'end', undefined);
  outbox.push({ t: 'end', id: 1 });
  assert.equal(batches.length, 0, 'nothing leaves before the turn ends');
  await nextTurn();
  assert.equal(batches.length, 1, 'one message for the turn');
  const [start, one, two, end] = batches[0]!;
  assert.deepEqual(start, { t: 'start', id: 1 });
  assert.deepEqual(texts(one!), ['héllo ', 'w', '', 'end']);
  assert.deepEqual((one as { sizes?: number[] }).sizes, [7, 1, 0, 3], 'sizes in bytes, an empty chunk included');
  assert.equal(two!.id, 2);
  assert.deepEqual([...(two as { data: Uint8Array }).data], [0xff, 0x00]);
  assert.equal((two as { sizes?: number[] }).sizes, undefined, 'a run of one is a plain chunk frame');
  assert.deepEqual(end, { t: 'end', id: 1 });
});

test('a lone chunk leaves with its turn, without waiting for another', async () => {
  const { outbox, batches } = collecting();
  outbox.chunk(5, 'only', undefined);
  await nextTurn();
  assert.equal(batches.length, 1);
  assert.deepEqual(texts(batches[0]![0]!), ['only']);
  outbox.chunk(5, 'next', undefined);
  await nextTurn();
  assert.equal(batches.length, 2, 'a chunk of a later turn is a frame of that turn');
  assert.deepEqual(texts(batches[1]![0]!), ['next']);
});

test('a frame for the stream between chunks keeps its place: chunks after it start a new run', async () => {
  const { outbox, batches } = collecting();
  outbox.chunk(3, 'a', undefined);
  outbox.push({ t: 'error', id: 3, error: { code: 'SY_PREDICTOR_ERROR', message: 'x' } });
  outbox.chunk(3, 'b', undefined);
  await nextTurn();
  const frames = batches[0]!;
  assert.deepEqual(
    frames.map((f) => f.t),
    ['chunk', 'error', 'chunk'],
  );
  assert.deepEqual(texts(frames[0]!), ['a']);
  assert.deepEqual(texts(frames[2]!), ['b']);
});

test('a run stops at RUN_MAX_BYTES; a chunk larger than that is a run of its own, not copied', async () => {
  const { outbox, batches } = collecting();
  const small = 'x'.repeat(RUN_MAX_BYTES / 4);
  for (let i = 0; i < 5; i++) outbox.chunk(1, small, undefined);
  const big = new Uint8Array(RUN_MAX_BYTES + 1).fill(7);
  outbox.chunk(1, big, undefined);
  await nextTurn();
  const frames = batches[0]!;
  assert.deepEqual(
    frames.map((f) => runLength(f as { sizes?: number[] })),
    [4, 1, 1],
  );
  assert.equal((frames[2] as { data: Uint8Array }).data, big);
  assert.equal(frames.map(texts).flat().length, 6);
});

test('a run carries its latest checkpoint and the index of the chunk it came with', async () => {
  const { outbox, batches } = collecting();
  outbox.chunk(1, 'a', { next: 2 });
  outbox.chunk(1, 'b', { next: 3 });
  outbox.chunk(1, 'c', undefined);
  outbox.chunk(2, 'x', { n: 1 });
  outbox.chunk(2, 'y', { n: 2 });
  await nextTurn();
  const [one, two] = batches[0]! as Array<{ cp?: unknown; cpAt?: number }>;
  assert.deepEqual([one!.cp, one!.cpAt], [{ next: 3 }, 1]);
  assert.deepEqual([two!.cp, two!.cpAt], [{ n: 2 }, undefined], 'the last chunk: no index needed');
});

test('flush delivers at once what the turn has so far', () => {
  const { outbox, batches } = collecting();
  outbox.chunk(1, 'a', undefined);
  outbox.flush();
  assert.equal(batches.length, 1);
  outbox.flush();
  assert.equal(batches.length, 1, 'nothing more to deliver');
});

test('joinChunks makes one run of separate chunks, with their seqs', () => {
  const run: ChunkRun = joinChunks([Buffer.from('ab'), Buffer.from(''), Buffer.from('c')], 41);
  const seen: Array<[number, string]> = [];
  forEachChunk(run, (bytes, seq) => seen.push([seq, Buffer.from(bytes).toString()]));
  assert.deepEqual(seen, [
    [41, 'ab'],
    [42, ''],
    [43, 'c'],
  ]);
  const one = joinChunks([Buffer.from('z')], 7);
  assert.equal(runLength(one), 1);
});

test('asciiChunks splits an ASCII run into its chunks as text, and declines anything else', () => {
  assert.deepEqual(asciiChunks(joinChunks([Buffer.from('a\n'), Buffer.from(''), Buffer.from('{"x":1}')], 1)), ['a\n', '', '{"x":1}']);
  assert.equal(asciiChunks(joinChunks([Buffer.from('a'), Buffer.from('é')], 1)), undefined, 'UTF-8 beyond ASCII: byte offsets are not character offsets');
  assert.equal(asciiChunks(joinChunks([Buffer.from('a'), Buffer.from([0xff])], 1)), undefined);
  assert.equal(asciiChunks({ bytes: Buffer.from('one'), sizes: undefined, firstSeq: 1 }), undefined, 'a run of one is decoded as a chunk');
});
