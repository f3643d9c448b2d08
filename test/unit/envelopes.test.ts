import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ownPacked, pack, unpack } from '../../workers/protocol/envelopes.js';

describe('envelopes', () => {
  it('packs every size of string after a large message let go of the grown scratch buffer', () => {
    const large = { body: 'x'.repeat(2 * 1024 * 1024) };
    assert.deepEqual(unpack(ownPacked(pack(large))), large);
    // Short, mid-sized (written with Buffer#utf8Write) and longer strings, into the fresh scratch.
    for (const n of [10, 100, 500, 3000, 20_000]) {
      const value = { text: 'é'.repeat(n), n };
      assert.deepEqual(unpack(ownPacked(pack(value))), value, `a string of ${n} characters`);
    }
  });
});
