import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mlpForward } from '../../examples/mlp/reference.js';
import { example, postJson, startGateway, type TestGateway } from '../helpers/gateway.js';

const MODEL = fileURLToPath(new URL('../../../examples/mlp/model.onnx', import.meta.url));
const KEY = 'v2-client-key-1';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
}

/** A binary-extension body as tritonclient builds it: the JSON header, then each input's raw bytes. */
function binaryRequest(header: unknown, ...tensors: Uint8Array[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([head, ...tensors]), headerLength: head.length };
}

/** Splits a binary-extension response into its JSON header and the bytes after it. */
async function readBinaryResponse(res: Response): Promise<{ header: any; rest: Buffer }> {
  const all = Buffer.from(await res.arrayBuffer());
  const n = Number(res.headers.get('inference-header-content-length'));
  return { header: JSON.parse(all.subarray(0, n).toString()), rest: all.subarray(n) };
}

describe('Open Inference Protocol v2 REST', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        mlp: { model: MODEL },
        echo: { predictor: example('echo/predictor.js') },
        locked: { model: MODEL, api_keys: [KEY] },
      },
    });
  });
  after(() => gw.close());

  test('server live, ready and metadata', async () => {
    const live = await fetch(`${gw.url}/v2/health/live`);
    assert.equal(live.status, 200);
    const ready = await fetch(`${gw.url}/v2/health/ready`);
    assert.equal(ready.status, 200);
    const meta = (await (await fetch(`${gw.url}/v2`)).json()) as { name: string; version: string; extensions: string[] };
    assert.equal(meta.name, 'switchyard');
    assert.match(meta.version, /^\d+\.\d+\.\d+/);
    assert.ok(meta.extensions.includes('binary_tensor_data'));
  });

  test('model metadata of an ONNX endpoint: the session\'s real names, datatypes and shapes', async () => {
    const res = await fetch(`${gw.url}/v2/models/mlp`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      name: 'mlp',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [-1, 3] },
        { name: 'probs', datatype: 'FP32', shape: [-1, 3] },
      ],
    });
    const again = await fetch(`${gw.url}/v2/models/mlp/versions/1`);
    assert.equal(((await again.json()) as { name: string }).name, 'mlp');
    const ready = await fetch(`${gw.url}/v2/models/mlp/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { name: 'mlp', ready: true });
  });

  test('infer with JSON tensors (nested data too): outputs equal the reference and /inference/mlp', async () => {
    const x = [0.5, -1, 2, 0, 1.5, 0.25, -0.75, 3];
    const res = await postJson(`${gw.url}/v2/models/mlp/infer`, {
      id: 'req-7',
      inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [x.slice(0, 4), x.slice(4)] }],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model_name, 'mlp');
    assert.equal(res.json.id, 'req-7');
    const [y, probs] = res.json.outputs;
    assert.deepEqual([y.name, y.datatype, y.shape], ['y', 'FP32', [2, 3]]);
    const ref = mlpForward(x, 2);
    close(y.data, ref.y);
    close(probs.data, ref.probs);
    const ours = await postJson(`${gw.url}/inference/mlp`, { x: { dims: [2, 4], data: x } });
    assert.deepEqual(y.data, ours.json.y.data);
    assert.deepEqual(probs.data, ours.json.probs.data);
  });

  test('infer with the binary tensor extension, in and out, as tritonclient sends it', async () => {
    const batch = 3;
    const x = new Float32Array(batch * 4).map((_, i) => i / 5 - 1);
    const { body, headerLength } = binaryRequest(
      {
        inputs: [{ name: 'x', shape: [batch, 4], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        outputs: [{ name: 'probs', parameters: { binary_data: true } }, { name: 'y', parameters: { binary_data: false } }],
      },
      new Uint8Array(x.buffer),
    );
    const res = await fetch(`${gw.url}/v2/models/mlp/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
      body,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const { header, rest } = await readBinaryResponse(res);
    const [probs, y] = header.outputs;
    assert.deepEqual(probs, { name: 'probs', datatype: 'FP32', shape: [batch, 3], parameters: { binary_data_size: batch * 3 * 4 } });
    assert.equal(rest.length, batch * 3 * 4);
    const ref = mlpForward(Array.from(x), batch);
    close(new Float32Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + rest.length)), ref.probs);
    close(y.data, ref.y);
  });

  test('binary_data_output: every output comes as binary, in order', async () => {
    const res = await postJson(`${gw.url}/v2/models/mlp/infer`, {
      parameters: { binary_data_output: true },
      inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
    });
    assert.equal(res.status, 200);
    // postJson decoded the body as text; ask again for the bytes.
    const raw = await fetch(`${gw.url}/v2/models/mlp/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { binary_data_output: true }, inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
    });
    const { header, rest } = await readBinaryResponse(raw);
    assert.deepEqual(
      header.outputs.map((o: { name: string; parameters: { binary_data_size: number } }) => [o.name, o.parameters.binary_data_size]),
      [['y', 12], ['probs', 12]],
    );
    const ref = mlpForward([1, 2, 3, 4], 1);
    close(new Float32Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 12)), ref.y);
    close(new Float32Array(rest.buffer.slice(rest.byteOffset + 12, rest.byteOffset + 24)), ref.probs);
  });

  test('a predictor endpoint: BYTES in as a string, its answer back as outputs', async () => {
    const res = await postJson(`${gw.url}/v2/models/echo/infer`, {
      inputs: [
        { name: 'text', shape: [1], datatype: 'BYTES', data: ['hello'] },
        { name: 'n', shape: [2], datatype: 'INT32', data: [7, 8] },
      ],
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.outputs, [
      { name: 'text', datatype: 'BYTES', shape: [1], data: ['hello'] },
      { name: 'n', datatype: 'INT32', shape: [2], data: [7, 8] },
    ]);
    const meta = (await (await fetch(`${gw.url}/v2/models/echo`)).json()) as { inputs: unknown[]; platform: string };
    assert.deepEqual(meta.inputs, []);
    assert.equal(meta.platform, 'switchyard');
  });

  test('errors come in the protocol\'s shape with the right status', async () => {
    const unknown = await fetch(`${gw.url}/v2/models/nope`);
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as { error: string; code: string };
    assert.match(body.error, /no model named "nope"/);
    assert.equal(body.code, 'SY_NOT_FOUND');
    const wrongShape = await postJson(`${gw.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] });
    assert.equal(wrongShape.status, 400);
    assert.equal(typeof wrongShape.json.error, 'string');
    const fp16 = await postJson(`${gw.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP16', data: [1, 2, 3, 4] }] });
    assert.equal(fp16.status, 400);
    assert.match(fp16.json.error, /FP16 is not supported/);
    const noOutput = await postJson(`${gw.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }], outputs: [{ name: 'z' }] });
    assert.equal(noOutput.status, 400);
    assert.match(noOutput.json.error, /no output named "z"/);
    const badVersion = await fetch(`${gw.url}/v2/models/mlp/versions/9/ready`);
    assert.equal(badVersion.status, 404);
    const getInfer = await fetch(`${gw.url}/v2/models/mlp/infer`);
    assert.equal(getInfer.status, 405);
  });

  test('the endpoint\'s Bearer keys guard its model routes', async () => {
    const x = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
    const refused = await postJson(`${gw.url}/v2/models/locked/infer`, x);
    assert.equal(refused.status, 401);
    assert.equal(refused.json.code, 'SY_UNAUTHORIZED');
    assert.equal((await fetch(`${gw.url}/v2/models/locked`)).status, 401);
    const ok = await postJson(`${gw.url}/v2/models/locked/infer`, x, { authorization: `Bearer ${KEY}` });
    assert.equal(ok.status, 200);
    close(ok.json.outputs[0].data, mlpForward([1, 2, 3, 4], 1).y);
  });
});
