/** The WebSocket reply frames that carry bytes: the same messages as encoding them whole, built with one copy. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { unpack } from '../../workers/protocol/envelopes.js';
import { base64Frame, replyEncoder } from '../../gateway/http/ws-messages.js';

const SIZES = [0, 1, 2, 3, 4, 255, 256, 65_535, 65_536, 48 * 1024 - 1, 48 * 1024, 48 * 1024 + 1, 200_001];

test('base64 written piece by piece is the base64 of the whole, between a UTF-8 prefix and suffix', () => {
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    const frame = base64Frame('{"id":"é€",', bytes, '}');
    assert.equal(frame.toString('utf8'), `{"id":"é€",${bytes.toString('base64')}}`, `${size} bytes`);
  }
});

test('a byte answer over JSON is one text frame naming its encoding and media type', () => {
  const bytes = randomBytes(100_000);
  const frame = replyEncoder('日本', false).result(bytes, 'application/octet-stream');
  assert.equal(frame.binary, false);
  const message = JSON.parse(Buffer.from(frame.data as Uint8Array).toString('utf8')) as Record<string, string>;
  assert.deepEqual(message, { id: '日本', result: bytes.toString('base64'), encoding: 'base64', content_type: 'application/octet-stream' });
});

test('a byte answer over msgpack is a map with the bytes as bin, for every bin size', () => {
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    const frame = replyEncoder(7, true).file(bytes, 'image/png');
    assert.equal(frame.binary, true);
    const message = unpack<{ id: number; content_type: string; result: Uint8Array }>(frame.data as Uint8Array);
    assert.deepEqual(Object.keys(message).sort(), ['content_type', 'id', 'result']);
    assert.equal(message.id, 7);
    assert.equal(message.content_type, 'image/png');
    assert.ok(Buffer.from(message.result).equals(bytes), `${size} bytes`);
  }
});
