import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { negotiate, type Negotiated } from '../../gateway/http/negotiate.js';

const answer = (accept: string, produces: string[] = ['image/png'], bodyType: 'json' | 'msgpack' = 'json'): string => {
  let n: Negotiated;
  try {
    n = negotiate(accept, produces, bodyType);
  } catch (err) {
    return (err as { code: string }).code;
  }
  return n.fileType ?? (n.sse ? 'sse' : n.ndjson ? 'ndjson' : n.encoding);
};

describe('Accept negotiation', () => {
  test('no Accept, or any type: the encoding the body came in', () => {
    assert.equal(answer(''), 'json');
    assert.equal(answer('*/*'), 'json');
    assert.equal(answer('*/*', [], 'msgpack'), 'msgpack');
    assert.equal(answer('application/*', [], 'msgpack'), 'msgpack');
  });

  test('a type wildcard picks a type the endpoint produces', () => {
    assert.equal(answer('image/*'), 'image/png');
    assert.equal(answer('image/*', ['image/webp', 'image/png']), 'image/webp');
    assert.equal(answer('image/*', []), 'SY_NOT_ACCEPTABLE');
  });

  test('q-values rank the types, whatever order they are listed in', () => {
    assert.equal(answer('application/json;q=0.5, application/msgpack'), 'msgpack');
    assert.equal(answer('application/json, image/png;q=0.9'), 'json');
    assert.equal(answer('application/json;q=0.8, image/png'), 'image/png');
    assert.equal(answer('text/html, */*;q=0.1'), 'json');
    assert.equal(answer('application/json; charset=utf-8; q=0.2, application/msgpack;q=0.3'), 'msgpack');
  });

  test('equal q: the more specific range, then the one listed first', () => {
    assert.equal(answer('*/*, image/png'), 'image/png');
    assert.equal(answer('image/png, application/json'), 'image/png');
    assert.equal(answer('application/json, image/png'), 'json');
  });

  test('q=0 refuses a type, also one a wildcard would allow', () => {
    assert.equal(answer('image/png;q=0, */*'), 'json');
    assert.equal(answer('*/*;q=0'), 'SY_NOT_ACCEPTABLE');
    assert.equal(answer('application/json;q=0, application/*'), 'msgpack');
  });

  test('stream framings are chosen only by name', () => {
    assert.equal(answer('text/event-stream'), 'sse');
    assert.equal(answer('application/x-ndjson'), 'ndjson');
    assert.equal(answer('text/*'), 'SY_NOT_ACCEPTABLE');
    assert.equal(answer('text/event-stream;q=0.5, application/json'), 'json');
  });

  test('a type nobody offers is 406 naming what is offered', () => {
    assert.throws(() => negotiate('text/html', ['image/png'], 'json'), (err: Error & { code?: string }) => err.code === 'SY_NOT_ACCEPTABLE' && /image\/png/.test(err.message));
  });
});
