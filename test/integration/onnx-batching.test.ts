import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MLP_MODEL_PATH, writeMlpModel } from '../../examples/mlp/make-model.js';
import { mlpForward } from '../../examples/mlp/reference.js';
import type { PredictRequest } from '../../workers/predictor/api.js';
import OnnxPredictor from '../../workers/predictor/onnx-predictor.js';
import type { WireTensor } from '../../workers/predictor/tensors.js';

const req = (aborted = false): PredictRequest => {
  const c = new AbortController();
  if (aborted) c.abort();
  return { id: '1', headers: {}, accept: undefined, deadline: Date.now() + 10_000, signal: c.signal };
};

function rowsOf(x: number[], batch: number): number[] {
  return Array.from(mlpForward(x, batch).y);
}

describe('dynamic batching in the ONNX predictor', () => {
  const predictor = new OnnxPredictor();
  before(async () => {
    if (!existsSync(MLP_MODEL_PATH)) await writeMlpModel();
    await predictor.setup({ endpoint: 'mlp', replicaId: 'mlp/cpu/1', device: 'cpu', outputDir: '/tmp', modelPath: MLP_MODEL_PATH, settings: {} });
  });
  after(() => predictor.teardown());

  test('requests of different row counts stack into one run and each gets its own rows', async () => {
    const inputs = [1, 3, 2, 5].map((batch, k) => {
      const x = Array.from({ length: batch * 4 }, (_, i) => Math.sin(i + 10 * k));
      return { batch, x, body: { x: { dims: [batch, 4], data: x } } };
    });
    const results = (await predictor.predictBatch(inputs.map((i) => i.body), inputs.map(() => req()))) as Array<Record<string, WireTensor>>;
    results.forEach((r, k) => {
      const { batch, x } = inputs[k]!;
      assert.deepEqual(r.y!.dims, [batch, 3]);
      const got = r.y!.values() as number[];
      rowsOf(x, batch).forEach((v, i) => assert.ok(Math.abs(got[i]! - v) < 1e-5, `request ${k} value ${i}`));
    });
  });

  test('a bad input fails alone; a cancelled request is not run; the rest are answered', async () => {
    const good = { x: { dims: [1, 4], data: [1, 2, 3, 4] } };
    const bad = { x: { dims: [1, 4], data: [1, 2] } };
    const results = await predictor.predictBatch([good, bad, good, good], [req(), req(), req(true), req()]);
    assert.equal((results[1] as { code?: string }).code, 'SY_BAD_REQUEST');
    assert.equal((results[2] as { code?: string }).code, 'SY_CANCELLED');
    for (const i of [0, 3]) {
      const y = (results[i] as Record<string, WireTensor>).y!.values() as number[];
      rowsOf([1, 2, 3, 4], 1).forEach((v, j) => assert.ok(Math.abs(y[j]! - v) < 1e-5));
    }
  });
});
