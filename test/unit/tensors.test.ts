import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { WireTensor, decodeInputs, typedView, type TensorSpec } from '../../workers/predictor/tensors.js';

const MLP: TensorSpec[] = [{ name: 'x', type: 'float32', shape: ['batch', 4] }];

function badRequest(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    const e = err as { code?: string; message?: string };
    assert.equal(e.code, 'SY_BAD_REQUEST');
    assert.match(e.message ?? '', pattern);
    return true;
  };
}

describe('decodeInputs: numbers (JSON clients)', () => {
  test('takes the model type by default and keeps dims', () => {
    const decoded = decodeInputs({ x: { dims: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8.5] } }, MLP);
    assert.equal(decoded.x!.type, 'float32');
    assert.deepEqual(decoded.x!.dims, [2, 4]);
    assert.ok(decoded.x!.data instanceof Float32Array);
    assert.deepEqual(Array.from(decoded.x!.data as Float32Array), [1, 2, 3, 4, 5, 6, 7, 8.5]);
  });

  test('accepts tensors wrapped in "inputs"', () => {
    const decoded = decodeInputs({ inputs: { x: { dims: [1, 4], type: 'float32', data: [0, 0, 0, 1] } } }, MLP);
    assert.deepEqual(Array.from(decoded.x!.data as Float32Array), [0, 0, 0, 1]);
  });

  test('int64 from numbers and bigints, bool from booleans and 0/1', () => {
    const specs: TensorSpec[] = [
      { name: 'ids', type: 'int64', shape: [3] },
      { name: 'mask', type: 'bool', shape: [4] },
    ];
    const decoded = decodeInputs({ ids: { dims: [3], data: [-5, 2 ** 40, 7n] }, mask: { dims: [4], data: [true, false, 1, 0] } }, specs);
    assert.deepEqual(Array.from(decoded.ids!.data as BigInt64Array), [-5n, 2n ** 40n, 7n]);
    assert.deepEqual(Array.from(decoded.mask!.data as Uint8Array), [1, 0, 1, 0]);
  });

  test('rejects integers out of range and non-numbers, naming the element', () => {
    const specs: TensorSpec[] = [{ name: 'img', type: 'uint8', shape: [2] }];
    assert.throws(() => decodeInputs({ img: { dims: [2], data: [3, 256] } }, specs), badRequest(/"img".*data\[1\] is 256, not a valid uint8/));
    assert.throws(() => decodeInputs({ x: { dims: [1, 4], data: [1, '2', 3, 4] } }, MLP), badRequest(/"x".*data\[1\] is "2"/));
    assert.throws(() => decodeInputs({ img: { dims: [2], data: [1.5, 2] } }, specs), badRequest(/data\[0\] is 1.5/));
  });
});

describe('decodeInputs: raw bytes (msgpack clients)', () => {
  test('an aligned byte view becomes a typed view over the same memory', () => {
    const values = new Float32Array([1, 2, 3, 4]);
    const bytes = new Uint8Array(values.buffer);
    const decoded = decodeInputs({ x: { dims: [1, 4], data: bytes } }, MLP);
    assert.equal(decoded.x!.data.buffer, values.buffer);
    assert.deepEqual(Array.from(decoded.x!.data as Float32Array), [1, 2, 3, 4]);
  });

  test('misaligned bytes are copied to an aligned buffer with the same values', () => {
    const backing = new Uint8Array(1 + 16);
    backing.set(new Uint8Array(new Float32Array([0.5, -1, 2, 1e6]).buffer), 1);
    const misaligned = backing.subarray(1);
    const decoded = decodeInputs({ x: { dims: [1, 4], data: misaligned } }, MLP);
    assert.notEqual(decoded.x!.data.buffer, backing.buffer);
    assert.deepEqual(Array.from(decoded.x!.data as Float32Array), [0.5, -1, 2, 1e6]);
  });

  test('a byte count that does not match dims is refused with both numbers', () => {
    assert.throws(() => decodeInputs({ x: { dims: [2, 4], data: new Uint8Array(16) } }, MLP), badRequest(/"x".*16 bytes but dims need 8 × 4 = 32/));
  });
});

describe('decodeInputs: what is wrong with a request', () => {
  test('unknown input names the input and what the model takes', () => {
    assert.throws(() => decodeInputs({ input: { dims: [1, 4], data: [1, 2, 3, 4] } }, MLP), badRequest(/unknown input "input"; the model takes "x"/));
  });

  test('missing input', () => {
    const two: TensorSpec[] = [...MLP, { name: 'scale', type: 'float32', shape: [1] }];
    assert.throws(() => decodeInputs({ x: { dims: [1, 4], data: [1, 2, 3, 4] } }, two), badRequest(/missing input "scale"/));
  });

  test('wrong element count', () => {
    assert.throws(() => decodeInputs({ x: { dims: [2, 4], data: [1, 2, 3, 4] } }, MLP), badRequest(/"x": data has 4 elements but dims need 8/));
  });

  test('unknown dtype lists the known ones', () => {
    assert.throws(() => decodeInputs({ x: { dims: [1, 4], type: 'complex64', data: [1, 2, 3, 4] } }, MLP), badRequest(/"x" has type "complex64"; known types are float32, .*int64.*bool/));
  });

  test('a known dtype the model does not take', () => {
    assert.throws(() => decodeInputs({ x: { dims: [1, 4], type: 'int32', data: [1, 2, 3, 4] } }, MLP), badRequest(/"x" has type int32 but the model takes float32/));
  });

  test('dims that do not fit the declared shape, and dims that are not dims', () => {
    assert.throws(() => decodeInputs({ x: { dims: [1, 5], data: [1, 2, 3, 4, 5] } }, MLP), badRequest(/"x": dims \[1, 5\] do not fit the model's shape \[batch, 4\]/));
    assert.throws(() => decodeInputs({ x: { dims: [4], data: [1, 2, 3, 4] } }, MLP), badRequest(/do not fit/));
    assert.throws(() => decodeInputs({ x: { dims: [-1, 4], data: [] } }, MLP), badRequest(/dims must be an array of non-negative integers/));
  });

  test('bodies that are not named tensors', () => {
    assert.throws(() => decodeInputs([1, 2, 3], MLP), badRequest(/must be an object of named tensors/));
    assert.throws(() => decodeInputs({ x: [1, 2, 3, 4] }, MLP), badRequest(/input "x" must be an object/));
    assert.throws(() => decodeInputs({ x: { dims: [1, 4], data: 'AAAA' } }, MLP), badRequest(/data must be an array of numbers or raw little-endian bytes/));
  });
});

describe('WireTensor', () => {
  const output = { dims: [2, 2], type: 'float32', data: new Float32Array([0.25, -1.5, 3, 1e-3]) };

  test('keeps the runtime output as a byte view, no copy', () => {
    const tensor = WireTensor.fromTensor('y', output);
    assert.equal(tensor.data.buffer, output.data.buffer);
    assert.equal(tensor.data.byteLength, 16);
    assert.deepEqual(tensor.dims, [2, 2]);
  });

  test('JSON.stringify writes numbers, int64 as numbers and bool as booleans', () => {
    const result = {
      y: WireTensor.fromTensor('y', output),
      ids: WireTensor.fromTensor('ids', { dims: [2], type: 'int64', data: new BigInt64Array([-3n, 2n ** 50n]) }),
      keep: WireTensor.fromTensor('keep', { dims: [2], type: 'bool', data: new Uint8Array([1, 0]) }),
    };
    assert.deepEqual(JSON.parse(JSON.stringify(result)), {
      y: { dims: [2, 2], type: 'float32', data: [0.25, -1.5, 3, Math.fround(1e-3)] },
      ids: { dims: [2], type: 'int64', data: [-3, 2 ** 50] },
      keep: { dims: [2], type: 'bool', data: [true, false] },
    });
    assert.deepEqual(JSON.parse(JSON.stringify(result.y)), { dims: [2, 2], type: 'float32', data: [0.25, -1.5, 3, Math.fround(1e-3)] });
  });

  test('msgpack carries dims, type and the raw bytes, and the bytes decode back as an input', () => {
    const unpacked = unpack<Record<string, Record<string, unknown>>>(pack({ y: WireTensor.fromTensor('y', output) }));
    assert.deepEqual(Object.keys(unpacked.y!).sort(), ['data', 'dims', 'type']);
    assert.deepEqual(unpacked.y!.dims, [2, 2]);
    assert.equal(unpacked.y!.type, 'float32');
    const bytes = unpacked.y!.data as Uint8Array;
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual(Array.from(typedView(bytes, 'float32') as Float32Array), Array.from(output.data));

    const back = decodeInputs(unpacked, [{ name: 'y', type: 'float32', shape: [2, 2] }]);
    assert.deepEqual(Array.from(back.y!.data as Float32Array), Array.from(output.data));
  });

  test('a JSON response decodes back as an input too', () => {
    const json = JSON.parse(JSON.stringify({ y: WireTensor.fromTensor('y', output) }));
    const back = decodeInputs(json, [{ name: 'y', type: 'float32', shape: [2, 2] }]);
    assert.deepEqual(Array.from(back.y!.data as Float32Array), Array.from(output.data));
  });

  test('an output type the wire format cannot carry is a predictor fault', () => {
    assert.throws(
      () => WireTensor.fromTensor('names', { dims: [1], type: 'string', data: ['a'] }),
      (err: unknown) => (err as { code?: string }).code === 'SY_PREDICTOR_OUTPUT' && /output "names" has type string/.test((err as Error).message),
    );
  });
});
