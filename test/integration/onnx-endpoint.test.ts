import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mlpForward } from '../../examples/mlp/reference.js';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { postJson, startGateway, type TestGateway } from '../helpers/gateway.js';

const MODEL = fileURLToPath(new URL('../../../examples/mlp/model.onnx', import.meta.url));

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
}

describe('the built-in ONNX predictor behind the gateway', () => {
  let gw: TestGateway;
  before(async () => {
    assert.ok(existsSync(MODEL), 'npm run build writes examples/mlp/model.onnx');
    gw = await startGateway({ endpoints: { mlp: { model: MODEL, replicas: 2 } } });
  });
  after(() => gw.close());

  test('JSON tensors in, outputs equal the TypeScript reference', async () => {
    const batch = 5;
    const x = Array.from({ length: batch * 4 }, (_, i) => Math.sin(i) * 3);
    const res = await postJson(`${gw.url}/inference/mlp`, { x: { dims: [batch, 4], data: x } });
    assert.equal(res.status, 200, res.text);
    const ref = mlpForward(x, batch);
    assert.deepEqual(res.json.y.dims, [batch, 3]);
    assert.equal(res.json.y.type, 'float32');
    close(res.json.y.data, ref.y);
    close(res.json.probs.data, ref.probs);
  });

  test('TensorOpera Deploy\'s {"inputs": ...} wrapping works too', async () => {
    const x = [0.5, -1, 2, 0];
    const res = await postJson(`${gw.url}/inference/mlp`, { inputs: { x: { dims: [1, 4], type: 'float32', data: x } } });
    assert.equal(res.status, 200, res.text);
    close(res.json.y.data, mlpForward(x, 1).y);
  });

  test('msgpack with raw little-endian bytes in and out', async () => {
    const batch = 3;
    const x = new Float32Array(batch * 4).map((_, i) => i / 7 - 0.5);
    const body = pack({ x: { dims: [batch, 4], type: 'float32', data: new Uint8Array(x.buffer) } });
    const res = await fetch(`${gw.url}/inference/mlp`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/msgpack');
    const out = unpack<{ y: { dims: number[]; data: Uint8Array } }>(new Uint8Array(await res.arrayBuffer()));
    assert.ok(out.y.data instanceof Uint8Array, 'tensor data travels as bytes, not numbers');
    const y = new Float32Array(Uint8Array.from(out.y.data).buffer);
    close(y, mlpForward(x, batch).y);
  });

  test('a wrong tensor is a 400 that says what is wrong', async () => {
    const res = await postJson(`${gw.url}/inference/mlp`, { x: { dims: [1, 4], data: [1, 2, 3] } });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, 'SY_BAD_REQUEST');
    assert.match(res.json.error.message, /x/);
    const unknown = await postJson(`${gw.url}/inference/mlp`, { z: { dims: [1, 4], data: [1, 2, 3, 4] } });
    assert.equal(unknown.status, 400);
  });

  test('many concurrent requests of different batch sizes each get their own answer', async () => {
    const jobs = Array.from({ length: 200 }, (_, i) => {
      const batch = 1 + (i % 7);
      const x = Array.from({ length: batch * 4 }, (_, j) => Math.cos(i + j));
      return postJson(`${gw.url}/inference/mlp`, { x: { dims: [batch, 4], data: x } }).then((res) => ({ res, x, batch }));
    });
    for (const { res, x, batch } of await Promise.all(jobs)) {
      assert.equal(res.status, 200);
      close(res.json.y.data, mlpForward(x, batch).y);
    }
  });
});
