/**
 * Large bodies and results cross between the gateway's thread and a replica's thread beside the
 * envelope (workers/pool/payload-transfer.ts): shared bodies, moved results. What a client sees
 * must be byte for byte what it sent or what the predictor made, at sizes where a copy too many
 * shows (20 MB, 100 MB), and a retry on another replica must still have the body.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pack, unpack, type ReplyFrame } from '../../workers/protocol/envelopes.js';
import { ThreadReplicaLink } from '../../workers/pool/thread-link.js';
import { fixture, startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';

const MB = 1024 * 1024;

/** Bytes that differ from their neighbours, so a shifted or repeated slice shows. */
function varied(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
};

describe('large payloads between threads', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway({
      endpoints: {
        big: { predictor: fixture('behaviours'), max_body_bytes: 160 * MB, max_response_bytes: 160 * MB, timeout_ms: 120_000 },
        retried: { predictor: fixture('behaviours'), replicas: 2, idempotent: true, max_body_bytes: 8 * MB, timeout_ms: 60_000, output_dir: tempDir() },
      },
    });
  });
  after(() => gw.close());

  test('a 20 MB JSON body comes back byte for byte in the answer', async () => {
    // Printable, varied text: every byte position matters to the comparison.
    const text = Buffer.from(varied(20 * MB, 7).map((b) => 0x21 + (b % 90)).filter((b) => b !== 0x5c && b !== 0x22)).toString('latin1');
    const res = await fetch(`${gw.url}/inference/big`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: text }) });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { echo: string };
    assert.equal(answer.echo.length, text.length);
    assert.ok(answer.echo === text, 'the echoed text differs from what was sent');
  });

  test('a 100 MB msgpack body comes back as the 100 MB answer, byte for byte', async () => {
    const sent = varied(100 * MB, 11);
    const res = await fetch(`${gw.url}/inference/big`, {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack', accept: 'application/octet-stream' },
      body: pack({ action: 'bytes_back', value: sent }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const got = new Uint8Array(await res.arrayBuffer());
    assert.equal(got.byteLength, sent.byteLength);
    assert.equal(firstDifference(got, sent), -1);
  });

  test('a 100 MB result made in the replica arrives whole, and so does the next one', async () => {
    for (let round = 0; round < 2; round++) {
      const res = await fetch(`${gw.url}/inference/big`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'bytes', size: 100 * MB }) });
      assert.equal(res.status, 200);
      const got = new Uint8Array(await res.arrayBuffer());
      assert.equal(got.byteLength, 100 * MB);
      const expected = new Uint8Array(100 * MB).map((_, i) => i % 251);
      assert.equal(firstDifference(got, expected), -1, `round ${round}`);
    }
  });

  test('a 20 MB msgpack answer (bytes inside a map) decodes to what the predictor returned', async () => {
    const sent = varied(20 * MB, 3);
    const res = await fetch(`${gw.url}/inference/big`, {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack', accept: 'application/msgpack' },
      body: pack({ value: sent }),
    });
    assert.equal(res.status, 200);
    const answer = unpack<{ echo: Uint8Array }>(new Uint8Array(await res.arrayBuffer()));
    assert.equal(firstDifference(answer.echo, sent), -1);
  });

  test('a large body retried on another replica after its first replica died is still whole', async () => {
    const value = Buffer.from(varied(2 * MB, 5)).toString('base64');
    const res = await fetch(`${gw.url}/inference/retried`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'exit_once', mark: `retry-${process.pid}`, value }),
    });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { survived: boolean; value: string };
    assert.equal(answer.survived, true);
    assert.ok(answer.value === value, 'the retried body reached the second replica changed');
  });
});

describe('a replica thread given a batch of large bodies', () => {
  test('reads a cancel between them: the confirmation comes before the batch is through, not after all of it', async () => {
    const frames: ReplyFrame[] = [];
    const link = new ThreadReplicaLink(
      { replicaId: 'big/cpu/1', endpoint: 'big', device: 'cpu', node: 'local', region: 'local' },
      { predictorPath: fixture('behaviours'), outputDir: tempDir(), settings: {}, produces: [], keepFiles: false },
    );
    await link.start({ onFrames: (batch) => frames.push(...batch), onLost: () => undefined });
    try {
      const body = Buffer.from(JSON.stringify({ value: Array.from({ length: 200_000 }, (_, i) => i % 1000) }));
      const count = 8;
      // One message with all of them (what the gateway sends when they arrive in one turn), then a cancel.
      link.send(Array.from({ length: count }, (_, i) => ({ id: i + 1, body, bodyType: 'json' as const, encoding: 'json' as const, deadline: Date.now() + 60_000 })));
      link.control({ t: 'cancel', id: 999 });
      const deadline = Date.now() + 60_000;
      while (frames.filter((f) => f.t === 'result').length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const order = frames.map((f) => f.t);
      assert.equal(order.filter((t) => t === 'result').length, count, order.join(','));
      assert.ok(order.indexOf('cancelled') < order.lastIndexOf('result'), `the cancel was answered only after every body: ${order.join(',')}`);
      const first = frames.find((f) => f.t === 'result');
      assert.equal((JSON.parse(Buffer.from(first!.t === 'result' ? first!.body : []).toString('utf8')) as { echo: number[] }).echo.length, 200_000);
    } finally {
      await link.stop({ now: true });
    }
  });
});
