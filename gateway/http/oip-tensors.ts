/**
 * Open Inference Protocol v2 tensors ⇄ our tensor wire format (workers/predictor/tensors.ts), as
 * pure functions. The request side turns `{inputs: [{name, shape, datatype, data}]}` (JSON data,
 * or raw bytes after the JSON header with the binary tensor extension) into the named-tensor
 * object a predictor takes; the response side turns a predictor's answer back into v2 outputs.
 *
 * Datatypes: BOOL, UINT8..UINT64, INT8..INT64, FP32, FP64 map to our wire types; BYTES tensors
 * are strings (a predictor gets one string, or an array of them). Any other answer of a
 * predictor (not a tensor) becomes a BYTES output holding its JSON. FP16 and BF16 are refused.
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { WireTensor, isWireType, type WireType } from '../../workers/predictor/tensors.js';

const V2_TO_WIRE: Readonly<Record<string, WireType>> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP32: 'float32',
  FP64: 'float64',
};

const WIRE_TO_V2: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(V2_TO_WIRE).map(([v2, wire]) => [wire, v2]));

const WIDTH: Readonly<Record<WireType, number>> = { bool: 1, uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, uint64: 8, int64: 8, float64: 8 };

/** A wire type as a v2 datatype (`float32` → `FP32`); unknown types pass through upper-cased. */
export function v2Datatype(wireType: string): string {
  return WIRE_TO_V2[wireType] ?? wireType.toUpperCase();
}

/** A declared shape as v2 wants it: free dimensions are -1. */
export function v2Shape(shape: ReadonlyArray<number | string>): number[] {
  return shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
}

export interface InferRequest {
  /** Echoed in the response. */
  id: string | undefined;
  /** The named-tensor input for the predictor. */
  input: Record<string, unknown>;
  /** The outputs asked for (all when undefined), each with whether it goes as binary data. */
  outputs: Array<{ name: string; binary: boolean }> | undefined;
  /** `parameters.binary_data_output`: outputs not named in `outputs` go as binary data. */
  binaryByDefault: boolean;
}

const bad = (message: string) => new SwitchyardError('SY_BAD_REQUEST', message);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** BYTES elements in the binary extension: each a 4-byte little-endian length, then its bytes. */
function decodeBinaryStrings(bytes: Uint8Array, name: string): string[] {
  const out: string[] = [];
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < view.length) {
    if (at + 4 > view.length) throw bad(`input "${name}": BYTES data ends inside an element's length`);
    const n = view.readUInt32LE(at);
    at += 4;
    if (at + n > view.length) throw bad(`input "${name}": BYTES element of ${n} bytes runs past the data`);
    out.push(view.toString('utf8', at, at + n));
    at += n;
  }
  return out;
}

function encodeBinaryStrings(values: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) {
    const bytes = Buffer.from(value, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * Parses an infer request body. With `headerLength` (the `Inference-Header-Content-Length`
 * header), the JSON is the first `headerLength` bytes and binary tensor data follows, in the order
 * of the inputs that declare `parameters.binary_data_size`.
 */
export function parseInferRequest(body: Uint8Array, headerLength: number | undefined): InferRequest {
  const jsonEnd = headerLength ?? body.byteLength;
  if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.byteLength) {
    throw bad(`Inference-Header-Content-Length ${headerLength} does not fit a body of ${body.byteLength} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, jsonEnd).toString('utf8'));
  } catch (err) {
    throw bad(`the inference request is not valid JSON: ${(err as Error).message}`);
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.inputs) || parsed.inputs.length === 0) {
    throw bad('the inference request needs "inputs": [{"name", "shape", "datatype", "data"}, ...]');
  }
  let offset = jsonEnd;
  const input: Record<string, unknown> = {};
  for (const [i, raw] of parsed.inputs.entries()) {
    if (!isRecord(raw) || typeof raw.name !== 'string' || typeof raw.datatype !== 'string') throw bad(`inputs[${i}] needs "name", "shape" and "datatype"`);
    const name = raw.name;
    const shape = raw.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) throw bad(`input "${name}": shape must be an array of non-negative integers`);
    const count = (shape as number[]).reduce((n, d) => n * d, 1);
    const params = isRecord(raw.parameters) ? raw.parameters : {};
    let binary: Uint8Array | undefined;
    if (params.binary_data_size !== undefined) {
      const size = params.binary_data_size;
      if (!Number.isSafeInteger(size) || (size as number) < 0) throw bad(`input "${name}": binary_data_size must be a non-negative integer`);
      if (offset + (size as number) > body.byteLength) throw bad(`input "${name}": binary_data_size ${size} runs past the end of the body`);
      binary = body.subarray(offset, offset + (size as number));
      offset += size as number;
    } else if (raw.data === undefined) {
      throw bad(`input "${name}" has no "data" and no parameters.binary_data_size`);
    }
    if (raw.datatype === 'BYTES') {
      const values = binary ? decodeBinaryStrings(binary, name) : flatten(raw.data, name);
      if (!values.every((v) => typeof v === 'string')) throw bad(`input "${name}": BYTES data must be strings`);
      if (values.length !== count) throw bad(`input "${name}": ${values.length} elements for shape [${shape.join(', ')}]`);
      input[name] = values.length === 1 ? values[0] : values;
      continue;
    }
    const type = V2_TO_WIRE[raw.datatype];
    if (type === undefined) throw bad(`input "${name}": datatype ${raw.datatype} is not supported; use one of ${[...Object.keys(V2_TO_WIRE), 'BYTES'].join(', ')}`);
    input[name] = { dims: shape, type, data: binary ?? flatten(raw.data, name) };
  }
  if (offset !== body.byteLength) throw bad(`the body has ${body.byteLength - offset} bytes after the last binary input`);
  const requestParams = isRecord(parsed.parameters) ? parsed.parameters : {};
  const binaryByDefault = requestParams.binary_data_output === true;
  let outputs: InferRequest['outputs'];
  if (Array.isArray(parsed.outputs)) {
    outputs = parsed.outputs.map((o, i) => {
      if (!isRecord(o) || typeof o.name !== 'string') throw bad(`outputs[${i}] needs a "name"`);
      const p = isRecord(o.parameters) ? o.parameters : {};
      return { name: o.name, binary: p.binary_data === undefined ? binaryByDefault : p.binary_data === true };
    });
  }
  const id = typeof parsed.id === 'string' ? parsed.id : undefined;
  return { id, input, outputs, binaryByDefault };
}

function flatten(data: unknown, name: string): unknown[] {
  if (!Array.isArray(data)) throw bad(`input "${name}": data must be an array`);
  return data.flat(Infinity);
}

export interface V2Output {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: { binary_data_size: number };
  data?: unknown[];
}

/** One output of a predictor's answer, before it is written as JSON or binary. */
interface Tensor {
  name: string;
  datatype: string;
  shape: number[];
  /** JSON elements. */
  values(): unknown[];
  /** Binary extension bytes. */
  bytes(): Uint8Array;
}

function tensorOf(name: string, value: unknown): Tensor {
  if (isRecord(value) && Array.isArray(value.dims) && isWireType(value.type) && (value.data instanceof Uint8Array || Array.isArray(value.data))) {
    const type = value.type;
    const dims = value.dims as number[];
    const data = value.data;
    const wire = data instanceof Uint8Array ? new WireTensor(dims, type, data) : undefined;
    return {
      name,
      datatype: v2Datatype(type),
      shape: dims,
      values: () => (wire ? wire.values() : (data as unknown[])),
      bytes: () => (wire ? wire.data : numbersToBytes(data as unknown[], type)),
    };
  }
  const strings = Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : [typeof value === 'string' ? value : JSON.stringify(value ?? null)];
  return { name, datatype: 'BYTES', shape: [strings.length], values: () => strings, bytes: () => encodeBinaryStrings(strings) };
}

function numbersToBytes(values: unknown[], type: WireType): Uint8Array {
  const out = Buffer.alloc(values.length * WIDTH[type]);
  values.forEach((v, i) => {
    const n = typeof v === 'boolean' ? Number(v) : (v as number);
    const at = i * WIDTH[type];
    switch (type) {
      case 'bool':
      case 'uint8':
        out.writeUInt8(n, at);
        break;
      case 'int8':
        out.writeInt8(n, at);
        break;
      case 'uint16':
        out.writeUInt16LE(n, at);
        break;
      case 'int16':
        out.writeInt16LE(n, at);
        break;
      case 'uint32':
        out.writeUInt32LE(n, at);
        break;
      case 'int32':
        out.writeInt32LE(n, at);
        break;
      case 'float32':
        out.writeFloatLE(n, at);
        break;
      case 'float64':
        out.writeDoubleLE(n, at);
        break;
      case 'uint64':
        out.writeBigUInt64LE(BigInt(n), at);
        break;
      case 'int64':
        out.writeBigInt64LE(BigInt(n), at);
        break;
    }
  });
  return out;
}

/**
 * A predictor's answer as v2 outputs: each named tensor of an object answer is an output, any
 * other value a BYTES output with its JSON; an answer that is not an object is one output, "output".
 * Returns the JSON response and the binary data that follows it (empty without binary outputs).
 */
export function inferResponse(modelName: string, request: InferRequest, answer: unknown): { json: string; binary: Buffer[] } {
  const tensors = isRecord(answer) && !(answer instanceof Uint8Array) ? Object.entries(answer).map(([name, v]) => tensorOf(name, v)) : [tensorOf('output', answer)];
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const wanted = request.outputs ?? tensors.map((t) => ({ name: t.name, binary: request.binaryByDefault }));
  const outputs: V2Output[] = [];
  const binary: Buffer[] = [];
  for (const { name, binary: asBinary } of wanted) {
    const tensor = byName.get(name);
    if (!tensor) throw bad(`no output named "${name}"; the model answers ${tensors.map((t) => `"${t.name}"`).join(', ')}`);
    if (asBinary) {
      const bytes = tensor.bytes();
      binary.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      outputs.push({ name, datatype: tensor.datatype, shape: tensor.shape, parameters: { binary_data_size: bytes.byteLength } });
    } else {
      outputs.push({ name, datatype: tensor.datatype, shape: tensor.shape, data: tensor.values() });
    }
  }
  const json = JSON.stringify({ model_name: modelName, model_version: '1', ...(request.id === undefined ? {} : { id: request.id }), outputs });
  return { json, binary };
}
