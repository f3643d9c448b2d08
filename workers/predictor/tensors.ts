/**
 * The tensor wire format of the built-in ONNX predictor, for JSON and msgpack alike.
 *
 * In:  `{ <input name>: { dims: number[], type?: string, data: number[] | Uint8Array } }`, where a
 *      Uint8Array (what msgpack `bin` unpacks to) holds the elements' little-endian bytes.
 * Out: `{ <output name>: WireTensor }`. A WireTensor keeps the output's bytes as a view (no copy);
 *      msgpack sends them as `bin`, JSON.stringify writes numbers. One result serves both
 *      encodings without walking it first.
 *
 * Every problem with a request is a SY_BAD_REQUEST whose message names the input and the fault.
 */
import { SwitchyardError } from '../protocol/errors.js';

const ARRAY_TYPES = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const;

export type WireType = keyof typeof ARRAY_TYPES;
export type WireArray = InstanceType<(typeof ARRAY_TYPES)[WireType]>;

export const WIRE_TYPES = Object.keys(ARRAY_TYPES) as WireType[];

export function isWireType(type: unknown): type is WireType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(ARRAY_TYPES, type);
}

/** What the model declares for one input: its type and shape (a string dimension is free, e.g. `batch`). */
export interface TensorSpec {
  readonly name: string;
  readonly type: string;
  readonly shape: ReadonlyArray<number | string>;
}

/** One validated input, ready to hand to the runtime. */
export interface DecodedTensor {
  readonly dims: number[];
  readonly type: WireType;
  readonly data: WireArray;
}

/** Integer ranges checked when numbers arrive as a JSON array (a typed array would wrap silently). */
const INTEGER_RANGES: Partial<Record<WireType, readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/** Validates a request body against the model's inputs and turns it into typed arrays. */
export function decodeInputs(input: unknown, specs: readonly TensorSpec[]): Record<string, DecodedTensor> {
  const tensors = unwrapInputs(input, specs);
  const decoded: Record<string, DecodedTensor> = {};
  for (const name of Object.keys(tensors)) {
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) {
      throw badRequest(`unknown input "${name}"; the model takes ${listNames(specs)}`);
    }
    decoded[name] = decodeTensor(tensors[name], spec);
  }
  for (const spec of specs) {
    if (!(spec.name in decoded)) throw badRequest(`missing input "${spec.name}"; the model takes ${listNames(specs)}`);
  }
  return decoded;
}

/** Accepts the tensors at the top level or under `inputs` (unless the model has an input called `inputs`). */
function unwrapInputs(input: unknown, specs: readonly TensorSpec[]): Record<string, unknown> {
  if (!isPlainRecord(input)) {
    throw badRequest(`the body must be an object of named tensors, e.g. {"${specs[0]?.name ?? 'x'}": {"dims": [...], "data": [...]}}`);
  }
  const wrapped = input.inputs;
  if (isPlainRecord(wrapped) && !specs.some((s) => s.name === 'inputs')) return wrapped;
  return input;
}

function decodeTensor(value: unknown, spec: TensorSpec): DecodedTensor {
  const name = spec.name;
  if (!isPlainRecord(value)) throw badRequest(`input "${name}" must be an object {dims, type?, data}`);

  const type = value.type ?? spec.type;
  if (!isWireType(type)) {
    throw badRequest(`input "${name}" has type ${JSON.stringify(type)}; known types are ${WIRE_TYPES.join(', ')}`);
  }
  if (type !== spec.type) throw badRequest(`input "${name}" has type ${type} but the model takes ${spec.type}`);

  const dims = decodeDims(value.dims, spec);
  const count = dims.reduce((n, d) => n * d, 1);
  const data = value.data;
  if (ArrayBuffer.isView(data)) return { dims, type, data: fromBytes(data, type, count, name) };
  if (Array.isArray(data)) return { dims, type, data: fromNumbers(data, type, count, name) };
  throw badRequest(`input "${name}": data must be an array of numbers or raw little-endian bytes`);
}

function decodeDims(dims: unknown, spec: TensorSpec): number[] {
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw badRequest(`input "${spec.name}": dims must be an array of non-negative integers`);
  }
  // An empty declared shape means the model did not declare one; nothing to check against.
  if (spec.shape.length > 0) {
    const fits = dims.length === spec.shape.length && spec.shape.every((d, i) => typeof d === 'string' || d === dims[i]);
    if (!fits) {
      throw badRequest(`input "${spec.name}": dims ${formatShape(dims)} do not fit the model's shape ${formatShape(spec.shape)}`);
    }
  }
  return dims as number[];
}

function fromNumbers(values: unknown[], type: WireType, count: number, name: string): WireArray {
  if (values.length !== count) {
    throw badRequest(`input "${name}": data has ${values.length} elements but dims need ${count}`);
  }
  if (type === 'float32' || type === 'float64') {
    const out = new ARRAY_TYPES[type](count);
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v !== 'number') throw badElement(name, i, v, type);
      out[i] = v;
    }
    return out;
  }
  if (type === 'bool') {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (v === true || v === 1) out[i] = 1;
      else if (v !== false && v !== 0) throw badElement(name, i, v, type);
    }
    return out;
  }
  const [min, max] = INTEGER_RANGES[type] as readonly [number, number];
  if (type === 'int64' || type === 'uint64') {
    const out = new ARRAY_TYPES[type](count);
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v === 'bigint' && v >= (type === 'int64' ? -(2n ** 63n) : 0n) && v < (type === 'int64' ? 2n ** 63n : 2n ** 64n)) out[i] = v;
      else if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) out[i] = BigInt(v);
      else throw badElement(name, i, v, type);
    }
    return out;
  }
  const out = new ARRAY_TYPES[type](count);
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badElement(name, i, v, type);
    out[i] = v;
  }
  return out;
}

function fromBytes(bytes: ArrayBufferView, type: WireType, count: number, name: string): WireArray {
  const width = ARRAY_TYPES[type].BYTES_PER_ELEMENT;
  if (bytes.byteLength !== count * width) {
    throw badRequest(`input "${name}": data has ${bytes.byteLength} bytes but dims need ${count} × ${width} = ${count * width}`);
  }
  return typedView(bytes, type);
}

/**
 * A typed array over raw little-endian bytes: a view when the offset is aligned to the element
 * size, else a copy (msgpack `bin` payloads sit at any offset inside the message).
 */
export function typedView(bytes: ArrayBufferView, type: WireType): WireArray {
  const ArrayType = ARRAY_TYPES[type];
  const width = ArrayType.BYTES_PER_ELEMENT;
  const length = bytes.byteLength / width;
  if (bytes.byteOffset % width === 0) return new ArrayType(bytes.buffer as ArrayBuffer, bytes.byteOffset, length);
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return new ArrayType(aligned.buffer, 0, length);
}

export function zerosOf(type: WireType, count: number): WireArray {
  return new ARRAY_TYPES[type](count);
}

/** The JSON form of a tensor: numbers (int64 too, exact up to 2^53), booleans for bool. */
export interface JsonTensor {
  dims: number[];
  type: WireType;
  data: number[] | boolean[];
}

export class WireTensor {
  readonly dims: number[];
  readonly type: WireType;
  /** The elements' little-endian bytes: a view over the runtime's output, never a copy. */
  readonly data: Uint8Array;

  constructor(dims: number[], type: WireType, data: Uint8Array) {
    this.dims = dims;
    this.type = type;
    this.data = data;
  }

  /** Wraps a runtime output (`{dims, type, data: typed array}`); types outside the wire format are a predictor fault. */
  static fromTensor(name: string, tensor: { readonly dims: readonly number[]; readonly type: string; readonly data: unknown }): WireTensor {
    const { type, data } = tensor;
    if (!isWireType(type) || !ArrayBuffer.isView(data)) {
      throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `output "${name}" has type ${type}, which the tensor wire format cannot carry (${WIRE_TYPES.join(', ')})`);
    }
    return new WireTensor([...tensor.dims], type, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  /** The elements as numbers (or booleans for bool). */
  values(): number[] | boolean[] {
    const typed = typedView(this.data, this.type);
    if (this.type === 'bool') return Array.from(typed as Uint8Array, (v) => v !== 0);
    if (typed instanceof BigInt64Array || typed instanceof BigUint64Array) return Array.from(typed, Number);
    return Array.from(typed as Exclude<WireArray, BigInt64Array | BigUint64Array>);
  }

  /**
   * JSON.stringify always passes the property key; msgpackr (which honours toJSON by default)
   * calls it with none, and then gets the bytes untouched so they travel as msgpack `bin`.
   */
  toJSON(key?: string): JsonTensor | { dims: number[]; type: WireType; data: Uint8Array } {
    if (key === undefined) return { dims: this.dims, type: this.type, data: this.data };
    return { dims: this.dims, type: this.type, data: this.values() };
  }
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function listNames(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `"${s.name}"`).join(', ');
}

function formatShape(shape: ReadonlyArray<number | string>): string {
  return `[${shape.join(', ')}]`;
}

function badElement(name: string, index: number, value: unknown, type: WireType): SwitchyardError {
  const shown = typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value);
  return badRequest(`input "${name}": data[${index}] is ${shown}, not a valid ${type}`);
}

function badRequest(message: string): SwitchyardError {
  return new SwitchyardError('SY_BAD_REQUEST', message);
}
