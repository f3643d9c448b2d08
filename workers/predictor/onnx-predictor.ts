/**
 * The built-in predictor for endpoints declared with `model: path/to/model.onnx`: named tensors
 * in, named tensors out (see tensors.ts for the wire format).
 *
 * `session.run` blocks its thread, so this predictor only ever runs inside a replica's worker
 * thread. Setup runs the model once on zeros so the first request does not pay for onnxruntime's
 * lazy allocations.
 *
 * Dynamic batching: requests that reach the replica together and agree on every input's type and
 * non-batch dimensions run as one `session.run` over their rows stacked, when the model's first
 * dimension is free; each answer is its own rows of each output. One run of N rows costs far less
 * than N runs of one row.
 */
import { SwitchyardError } from '../protocol/errors.js';
import { createSession, Tensor, type InferenceSession, type SessionTuning } from '../../native/onnx.js';
import type { ModelMetadata, PredictRequest, Predictor, SetupContext } from './api.js';
import { WIRE_TYPES, WireTensor, decodeInputs, isWireType, zerosOf, type DecodedTensor, type TensorSpec, type WireArray, type WireType } from './tensors.js';

type Outputs = Record<string, WireTensor>;

export default class OnnxPredictor implements Predictor {
  #session: InferenceSession | undefined;
  #inputs: TensorSpec[] = [];
  #outputs: TensorSpec[] = [];
  /** Every input's first dimension is free, so rows of several requests can be stacked. */
  #batchable = false;

  async setup(ctx: SetupContext): Promise<void> {
    if (ctx.modelPath === undefined) {
      throw new Error(`endpoint "${ctx.endpoint}": the built-in ONNX predictor needs "model: path/to/model.onnx"`);
    }
    const session = await createSession(ctx.modelPath, ctx.device, tuningFrom(ctx));
    try {
      this.#inputs = inputSpecs(session, ctx.modelPath);
      this.#outputs = session.outputMetadata.map((meta) => ({ name: meta.name, type: meta.isTensor ? meta.type : 'unknown', shape: meta.isTensor ? [...meta.shape] : [] }));
      this.#batchable = this.#inputs.length > 0 && this.#inputs.every((spec) => typeof spec.shape[0] !== 'number' || spec.shape[0] < 0);
      await session.run(warmUpFeeds(this.#inputs));
    } catch (err) {
      await session.release();
      throw err;
    }
    this.#session = session;
  }

  async predict(input: unknown, req?: PredictRequest): Promise<Outputs> {
    const decoded = decodeInputs(input, this.#inputs);
    if (req?.signal.aborted) throw new SwitchyardError('SY_CANCELLED', 'the request was cancelled before the model ran');
    return this.#run(decoded);
  }

  async predictBatch(inputs: unknown[], reqs: PredictRequest[]): Promise<Array<Outputs | Error>> {
    const results: Array<Outputs | Error> = new Array(inputs.length);
    const groups = new Map<string, Array<{ index: number; decoded: Record<string, DecodedTensor>; rows: number }>>();
    inputs.forEach((input, index) => {
      try {
        const decoded = decodeInputs(input, this.#inputs);
        const rows = this.#batchable ? rowsOf(decoded) : undefined;
        const key = rows === undefined ? `single:${index}` : signature(decoded);
        let group = groups.get(key);
        if (!group) groups.set(key, (group = []));
        group.push({ index, decoded, rows: rows ?? 0 });
      } catch (err) {
        results[index] = err as Error;
      }
    });
    for (const group of groups.values()) {
      const live = group.filter((item) => {
        if (!reqs[item.index]?.signal.aborted) return true;
        results[item.index] = new SwitchyardError('SY_CANCELLED', 'the request was cancelled before the model ran');
        return false;
      });
      if (live.length === 0) continue;
      if (live.length === 1) {
        const only = live[0]!;
        results[only.index] = await this.#run(only.decoded).catch((err: Error) => err);
        continue;
      }
      try {
        const outputs = await this.#run(stack(live.map((item) => item.decoded)));
        const parts = unstack(outputs, live.map((item) => item.rows));
        live.forEach((item, i) => (results[item.index] = parts[i]!));
      } catch (err) {
        for (const item of live) results[item.index] = err as Error;
      }
    }
    return results;
  }

  async #run(decoded: Record<string, DecodedTensor>): Promise<Outputs> {
    const session = this.#session;
    if (session === undefined) throw new SwitchyardError('SY_NO_REPLICA', 'the ONNX model is not loaded');
    const feeds: Record<string, Tensor> = {};
    for (const name of Object.keys(decoded)) {
      const { type, data, dims } = decoded[name]!;
      feeds[name] = new Tensor(type, data, dims);
    }
    let results: InferenceSession.ReturnType;
    try {
      results = await session.run(feeds);
    } catch (err) {
      throw new SwitchyardError('SY_PREDICTOR_ERROR', `onnxruntime: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const outputs: Outputs = {};
    for (const name of Object.keys(results)) {
      outputs[name] = WireTensor.fromTensor(name, results[name] as Tensor);
    }
    return outputs;
  }

  metadata(): ModelMetadata {
    return { platform: 'onnxruntime_onnx', inputs: this.#inputs, outputs: this.#outputs };
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

/** Rows (first dimension) shared by every input of one request; undefined when they differ. */
function rowsOf(decoded: Record<string, DecodedTensor>): number | undefined {
  let rows: number | undefined;
  for (const t of Object.values(decoded)) {
    const r = t.dims[0];
    if (r === undefined || (rows !== undefined && r !== rows)) return undefined;
    rows = r;
  }
  return rows;
}

/** Requests with equal signatures can be stacked: same names, types and dimensions after the first. */
function signature(decoded: Record<string, DecodedTensor>): string {
  return Object.keys(decoded)
    .sort()
    .map((name) => `${name}:${decoded[name]!.type}:${decoded[name]!.dims.slice(1).join('x')}`)
    .join('|');
}

function stack(items: Array<Record<string, DecodedTensor>>): Record<string, DecodedTensor> {
  const stacked: Record<string, DecodedTensor> = {};
  for (const name of Object.keys(items[0]!)) {
    const first = items[0]![name]!;
    let rows = 0;
    let length = 0;
    for (const item of items) {
      rows += item[name]!.dims[0]!;
      length += item[name]!.data.length;
    }
    const data = new (first.data.constructor as new (n: number) => WireArray)(length);
    let offset = 0;
    for (const item of items) {
      (data as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(item[name]!.data as ArrayLike<unknown>, offset);
      offset += item[name]!.data.length;
    }
    stacked[name] = { type: first.type, dims: [rows, ...first.dims.slice(1)], data };
  }
  return stacked;
}

/** Splits each output along its first dimension back into one result per request. */
function unstack(outputs: Outputs, rows: number[]): Outputs[] {
  const total = rows.reduce((a, b) => a + b, 0);
  const parts: Outputs[] = rows.map(() => ({}));
  for (const [name, tensor] of Object.entries(outputs)) {
    if (tensor.dims[0] !== total) {
      throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `output "${name}" has ${tensor.dims[0]} rows for ${total} stacked input rows; the model cannot be batched`);
    }
    const bytesPerRow = total === 0 ? 0 : tensor.data.byteLength / total;
    let row = 0;
    rows.forEach((n, i) => {
      const bytes = tensor.data.subarray(row * bytesPerRow, (row + n) * bytesPerRow);
      parts[i]![name] = new WireTensor([n, ...tensor.dims.slice(1)], tensor.type, bytes);
      row += n;
    });
  }
  return parts;
}
