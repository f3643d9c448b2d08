import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MLP_MODEL_PATH, writeMlpModel } from '../../examples/mlp/make-model.js';
import { mlpForward } from '../../examples/mlp/reference.js';
import { INPUT_SIZE, OUTPUT_SIZE } from '../../examples/mlp/weights.js';
import { createSession, listExecutionProviders } from '../../native/onnx.js';
import type { PredictRequest } from '../../workers/predictor/api.js';
import OnnxPredictor from '../../workers/predictor/onnx-predictor.js';
import type { WireTensor } from '../../workers/predictor/tensors.js';
import { pack, unpack } from '../../workers/protocol/envelopes.js';

const TOLERANCE = 1e-5;

/** Deterministic inputs spanning negative and positive values. */
function inputsFor(batch: number): number[] {
  return Array.from({ length: batch * INPUT_SIZE }, (_, i) => Math.round(100 * Math.sin(i * 0.7 + batch)) / 25);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= TOLERANCE, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
  }
}

function floats(tensor: WireTensor | undefined): Float32Array {
  assert.ok(tensor, 'the output is missing');
  return new Float32Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength / 4);
}

function rejectsWith(code: string, pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, code);
    assert.match((err as Error).message, pattern);
    return true;
  };
}

describe('OnnxPredictor on the demo MLP (real onnxruntime, cpu)', () => {
  const predictor = new OnnxPredictor();
  let outputDir = '';

  before(async () => {
    if (!existsSync(MLP_MODEL_PATH)) writeMlpModel();
    outputDir = mkdtempSync(path.join(tmpdir(), 'switchyard-onnx-'));
    await predictor.setup({ endpoint: 'mlp', replicaId: 'mlp/cpu/0', device: 'cpu', outputDir, modelPath: MLP_MODEL_PATH, settings: {} });
  });

  after(async () => {
    await predictor.teardown();
    rmSync(outputDir, { recursive: true, force: true });
  });

  for (const batch of [1, 3, 16, 257]) {
    test(`batch of ${batch}: y and probs equal the TypeScript forward pass`, async () => {
      const x = inputsFor(batch);
      const out = await predictor.predict({ x: { dims: [batch, INPUT_SIZE], data: x } });
      const expected = mlpForward(x, batch);
      assert.deepEqual(Object.keys(out).sort(), ['probs', 'y']);
      assert.deepEqual(out.y?.dims, [batch, OUTPUT_SIZE]);
      assert.equal(out.y?.type, 'float32');
      assertClose(floats(out.y), expected.y, 'y');
      assertClose(floats(out.probs), expected.probs, 'probs');
    });
  }

  test('raw little-endian bytes at an odd offset (as msgpack delivers them) give the same answer', async () => {
    const x = inputsFor(5);
    const body = unpack<{ inputs: { x: { data: Uint8Array } } }>(
      pack({ inputs: { x: { dims: [5, INPUT_SIZE], type: 'float32', data: new Uint8Array(new Float32Array(x).buffer) } } }),
    );
    assert.notEqual(body.inputs.x.data.byteOffset % 4, 0, 'the bytes should sit misaligned inside the message');
    const out = await predictor.predict(body);
    assertClose(floats(out.y), mlpForward(x, 5).y, 'y');
  });

  test('one result serves JSON (numbers) and msgpack (bytes)', async () => {
    const x = inputsFor(2);
    const out = await predictor.predict({ x: { dims: [2, INPUT_SIZE], data: x } });
    const expected = mlpForward(x, 2);

    const json = JSON.parse(JSON.stringify(out)) as Record<string, { dims: number[]; type: string; data: number[] }>;
    assert.deepEqual(json.probs?.dims, [2, OUTPUT_SIZE]);
    assertClose(json.probs?.data ?? [], expected.probs, 'json probs');

    const viaMsgpack = unpack<Record<string, { dims: number[]; type: string; data: Uint8Array }>>(pack(out));
    const bytes = viaMsgpack.probs?.data;
    assert.ok(bytes instanceof Uint8Array);
    const aligned = new Float32Array(new Uint8Array(bytes).buffer);
    assertClose(aligned, expected.probs, 'msgpack probs');
  });

  test('a wrong input name is SY_BAD_REQUEST naming it and the real one', async () => {
    await assert.rejects(
      predictor.predict({ input: { dims: [1, INPUT_SIZE], data: [1, 2, 3, 4] } }),
      rejectsWith('SY_BAD_REQUEST', /unknown input "input"; the model takes "x"/),
    );
  });

  test('a wrong data length is SY_BAD_REQUEST with both counts', async () => {
    await assert.rejects(
      predictor.predict({ x: { dims: [2, INPUT_SIZE], data: [1, 2, 3, 4] } }),
      rejectsWith('SY_BAD_REQUEST', /"x": data has 4 elements but dims need 8/),
    );
  });

  test('an unknown dtype is SY_BAD_REQUEST listing the known ones', async () => {
    await assert.rejects(
      predictor.predict({ x: { dims: [1, INPUT_SIZE], type: 'float128', data: [1, 2, 3, 4] } }),
      rejectsWith('SY_BAD_REQUEST', /"x" has type "float128"; known types are float32/),
    );
  });

  test('a feature count the model does not take is SY_BAD_REQUEST showing the declared shape', async () => {
    await assert.rejects(
      predictor.predict({ x: { dims: [1, 3], data: [1, 2, 3] } }),
      rejectsWith('SY_BAD_REQUEST', /dims \[1, 3\] do not fit the model's shape \[batch, 4\]/),
    );
  });

  test('a request already cancelled does not run', async () => {
    const controller = new AbortController();
    controller.abort();
    const req: PredictRequest = { id: '1', headers: {}, accept: undefined, deadline: Date.now() + 1000, signal: controller.signal };
    await assert.rejects(predictor.predict({ x: { dims: [1, INPUT_SIZE], data: [1, 2, 3, 4] } }, req), rejectsWith('SY_CANCELLED', /cancelled/));
  });
});

describe('OnnxPredictor setup and teardown', () => {
  test('setup without a model path says what is missing', async () => {
    await assert.rejects(
      new OnnxPredictor().setup({ endpoint: 'nomodel', replicaId: 'r', device: 'cpu', outputDir: tmpdir(), settings: {} }),
      /endpoint "nomodel": the built-in ONNX predictor needs "model: path\/to\/model.onnx"/,
    );
  });

  test('settings.intra_op_threads is checked; a valid one loads and runs; teardown unloads', async () => {
    const bad = new OnnxPredictor().setup({ endpoint: 'mlp', replicaId: 'r', device: 'cpu', outputDir: tmpdir(), modelPath: MLP_MODEL_PATH, settings: { intra_op_threads: 0 } });
    await assert.rejects(bad, /settings.intra_op_threads must be a positive integer/);
    const one = new OnnxPredictor();
    await one.setup({ endpoint: 'mlp', replicaId: 'r', device: 'cpu', outputDir: tmpdir(), modelPath: MLP_MODEL_PATH, settings: { intra_op_threads: 1 } });
    const out = await one.predict({ x: { dims: [1, INPUT_SIZE], data: [1, 0, 0, 0] } });
    assertClose(floats(out.y), mlpForward([1, 0, 0, 0], 1).y, 'y');
    await one.teardown();
    await assert.rejects(one.predict({ x: { dims: [1, INPUT_SIZE], data: [1, 0, 0, 0] } }), rejectsWith('SY_NO_REPLICA', /not loaded/));
  });
});

describe('native/onnx devices', () => {
  test('the cpu provider always loads', async () => {
    assert.ok((await listExecutionProviders()).includes('cpu'));
  });

  test('a GPU that cannot load is an error naming the device, never a silent CPU session', async (t) => {
    if ((await listExecutionProviders()).includes('cuda')) {
      t.skip('CUDA loads on this machine');
      return;
    }
    await assert.rejects(createSession(MLP_MODEL_PATH, 'cuda:0'), /cannot run on cuda:0: /);
  });

  test('coreml where it is not available, and devices that do not exist', async (t) => {
    await assert.rejects(createSession(MLP_MODEL_PATH, 'tpu:0'), /unknown device "tpu:0": expected "cpu", "cuda:N" or "coreml"/);
    if ((await listExecutionProviders()).includes('coreml')) {
      t.skip('CoreML loads on this machine');
      return;
    }
    await assert.rejects(createSession(MLP_MODEL_PATH, 'coreml'), /cannot run on coreml: /);
  });
});
