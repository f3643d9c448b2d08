/**
 * The built-in predictor for endpoints declared with `model: path/to/model.onnx`: named tensors
 * in, named tensors out (see tensors.ts for the wire format).
 *
 * `session.run` blocks its thread, so this predictor only ever runs inside a replica's worker
 * thread. Setup runs the model once on zeros so the first request does not pay for onnxruntime's
 * lazy allocations.
 */
import { SwitchyardError } from '../../gateway/errors.js';
import { createSession, Tensor, type InferenceSession, type SessionTuning } from '../../native/onnx.js';
import type { PredictRequest, Predictor, SetupContext } from './api.js';
import { WIRE_TYPES, WireTensor, decodeInputs, isWireType, zerosOf, type TensorSpec, type WireType } from './tensors.js';

export default class OnnxPredictor implements Predictor {
  #session: InferenceSession | undefined;
  #inputs: TensorSpec[] = [];

  async setup(ctx: SetupContext): Promise<void> {
    if (ctx.modelPath === undefined) {
      throw new Error(`endpoint "${ctx.endpoint}": the built-in ONNX predictor needs "model: path/to/model.onnx"`);
    }
    const session = await createSession(ctx.modelPath, ctx.device, tuningFrom(ctx));
    try {
      this.#inputs = inputSpecs(session, ctx.modelPath);
      await session.run(warmUpFeeds(this.#inputs));
    } catch (err) {
      await session.release();
      throw err;
    }
    this.#session = session;
  }

  async predict(input: unknown, req?: PredictRequest): Promise<Record<string, WireTensor>> {
    const session = this.#session;
    if (session === undefined) throw new SwitchyardError('SY_NO_REPLICA', 'the ONNX model is not loaded');
    const decoded = decodeInputs(input, this.#inputs);
    const feeds: Record<string, Tensor> = {};
    for (const name of Object.keys(decoded)) {
      const { type, data, dims } = decoded[name];
      feeds[name] = new Tensor(type, data, dims);
    }
    if (req?.signal.aborted) throw new SwitchyardError('SY_CANCELLED', 'the request was cancelled before the model ran');
    let results: InferenceSession.ReturnType;
    try {
      results = await session.run(feeds);
    } catch (err) {
      throw new SwitchyardError('SY_PREDICTOR_ERROR', `onnxruntime: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const outputs: Record<string, WireTensor> = {};
    for (const name of Object.keys(results)) {
      outputs[name] = WireTensor.fromTensor(name, results[name] as Tensor);
    }
    return outputs;
  }

  async teardown(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    await session?.release();
  }
}

/** `settings.intra_op_threads` caps onnxruntime's per-operator threads (useful with several CPU replicas). */
function tuningFrom(ctx: SetupContext): SessionTuning {
  const threads = ctx.settings.intra_op_threads;
  if (threads === undefined) return {};
  if (!Number.isSafeInteger(threads) || (threads as number) < 1) {
    throw new Error(`endpoint "${ctx.endpoint}": settings.intra_op_threads must be a positive integer`);
  }
  return { intraOpThreads: threads as number };
}

/** The model's inputs as plain specs; a model whose inputs the wire format cannot carry is refused at setup. */
function inputSpecs(session: InferenceSession, modelPath: string): TensorSpec[] {
  return session.inputMetadata.map((meta) => {
    if (!meta.isTensor || !isWireType(meta.type)) {
      const what = meta.isTensor ? `a ${meta.type} tensor` : 'not a tensor';
      throw new Error(`${modelPath}: input "${meta.name}" is ${what}; the built-in ONNX predictor takes ${WIRE_TYPES.join(', ')} tensors`);
    }
    return { name: meta.name, type: meta.type, shape: [...meta.shape] };
  });
}

/** Zeros in every declared shape, free dimensions set to 1. */
function warmUpFeeds(specs: readonly TensorSpec[]): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const spec of specs) {
    const dims = spec.shape.map((d) => (typeof d === 'number' ? d : 1));
    const count = dims.reduce((n, d) => n * d, 1);
    const type = spec.type as WireType;
    feeds[spec.name] = new Tensor(type, zerosOf(type, count), dims);
  }
  return feeds;
}
