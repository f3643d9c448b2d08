import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inferResponse, parseInferRequest, v2Datatype, v2Shape } from '../../gateway/http/oip-tensors.js';

const json = (value: unknown) => new Uint8Array(Buffer.from(JSON.stringify(value)));

/** A BYTES tensor in the binary extension: each element a 4-byte little-endian length, then its bytes. */
function binaryStrings(...values: string[]): Buffer {
  return Buffer.concat(values.flatMap((v) => {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(Buffer.byteLength(v));
    return [len, Buffer.from(v)];
  }));
}

test('datatypes and shapes map to the protocol', () => {
  assert.equal(v2Datatype('float32'), 'FP32');
  assert.equal(v2Datatype('int64'), 'INT64');
  assert.equal(v2Datatype('bool'), 'BOOL');
  assert.deepEqual(v2Shape(['batch', 4, -1]), [-1, 4, -1]);
});

test('JSON inputs: nested data is flattened, BYTES become strings, numbers keep their wire type', () => {
  const r = parseInferRequest(json({ id: 'a', inputs: [
    { name: 'x', shape: [2, 2], datatype: 'INT32', data: [[1, 2], [3, 4]] },
    { name: 'text', shape: [1], datatype: 'BYTES', data: ['hi'] },
    { name: 'words', shape: [2], datatype: 'BYTES', data: ['a', 'b'] },
  ] }), undefined);
  assert.equal(r.id, 'a');
  assert.deepEqual(r.input, { x: { dims: [2, 2], type: 'int32', data: [1, 2, 3, 4] }, text: 'hi', words: ['a', 'b'] });
  assert.equal(r.outputs, undefined);
});

test('binary inputs are sliced from after the header, in order; BYTES elements are length-prefixed', () => {
  const header = Buffer.from(JSON.stringify({ inputs: [
    { name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
    { name: 's', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 4 + 3 + 4 + 1 } },
  ] }));
  const x = Buffer.from(new Float32Array([1.5, -2]).buffer);
  const r = parseInferRequest(new Uint8Array(Buffer.concat([header, x, binaryStrings('abc', 'd')])), header.length);
  const t = r.input.x as { dims: number[]; type: string; data: Uint8Array };
  assert.deepEqual([t.dims, t.type], [[2], 'float32']);
  assert.deepEqual([...new Float32Array(new Uint8Array(t.data).buffer)], [1.5, -2]);
  assert.deepEqual(r.input.s, ['abc', 'd']);
});

test('malformed requests name what is wrong', () => {
  const bad = (body: unknown, headerLength?: number) => assert.throws(() => parseInferRequest(json(body), headerLength), (e: { code: string; message: string }) => e.code === 'SY_BAD_REQUEST' && e.message.length > 0);
  bad({});
  bad({ inputs: [{ name: 'x', shape: [1], datatype: 'FP16', data: [1] }] });
  bad({ inputs: [{ name: 'x', shape: [-1], datatype: 'FP32', data: [1] }] });
  bad({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32' }] });
  bad({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }] }, 10);
  assert.throws(() => parseInferRequest(json({ inputs: [{ name: 's', shape: [2], datatype: 'BYTES', data: ['one'] }] }), undefined), /1 elements for shape \[2\]/);
});

test('answers become outputs: tensors as tensors, anything else as BYTES JSON, binary where asked', () => {
  const request = { id: undefined, input: {}, outputs: undefined, binaryByDefault: false };
  const tensor = { dims: [2], type: 'float32', data: new Uint8Array(new Float32Array([0.5, 2]).buffer) };
  const plain = JSON.parse(inferResponse('m', request, { y: tensor, note: { ok: true }, s: 'text' }).json);
  assert.deepEqual(plain.outputs, [
    { name: 'y', datatype: 'FP32', shape: [2], data: [0.5, 2] },
    { name: 'note', datatype: 'BYTES', shape: [1], data: ['{"ok":true}'] },
    { name: 's', datatype: 'BYTES', shape: [1], data: ['text'] },
  ]);
  assert.deepEqual(JSON.parse(inferResponse('m', request, 'just text').json).outputs, [{ name: 'output', datatype: 'BYTES', shape: [1], data: ['just text'] }]);
  const { json: head, binary } = inferResponse('m', { ...request, outputs: [{ name: 's', binary: true }, { name: 'y', binary: true }] }, { y: tensor, s: 'ab' });
  assert.deepEqual(JSON.parse(head).outputs.map((o: { parameters: { binary_data_size: number } }) => o.parameters.binary_data_size), [6, 8]);
  assert.deepEqual(Buffer.concat(binary), Buffer.concat([binaryStrings('ab'), Buffer.from(tensor.data)]));
  const numbers = inferResponse('m', { ...request, binaryByDefault: true }, { n: { dims: [2], type: 'int64', data: [1, -2] } });
  assert.deepEqual(Buffer.concat(numbers.binary), Buffer.from(new BigInt64Array([1n, -2n]).buffer));
});
