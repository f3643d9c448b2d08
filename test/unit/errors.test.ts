import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, fromWire, httpStatusOf, isRetryable, SwitchyardError, toSwitchyardError, wsCloseCodeOf } from '../../workers/protocol/errors.js';
import { repoRoot } from '../helpers/gateway.js';

test('every error code is documented in the README with its status', () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const rows = new Map([...readme.matchAll(/^\| `(SY_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.equal(rows.get(code), spec.status, `README documents ${code} as ${spec.status}`);
  }
  for (const code of rows.keys()) assert.ok(code in ERROR_CODES, `README documents ${code}, which does not exist`);
});

test('codes survive a trip across a boundary; unknown codes become SY_INTERNAL', () => {
  const err = new SwitchyardError('SY_QUEUE_FULL', 'busy', { retryAfterS: 2 });
  const back = fromWire(JSON.parse(JSON.stringify(err.toJSON())));
  assert.equal(back.code, 'SY_QUEUE_FULL');
  assert.equal(back.status, 503);
  assert.equal(back.retryAfterS, 2);
  assert.equal(fromWire({ code: 'NOPE', message: 'x' }).code, 'SY_INTERNAL');
  assert.equal(toSwitchyardError(Object.assign(new Error('m'), { code: 'SY_BAD_REQUEST' })).status, 400);
  assert.equal(toSwitchyardError(new TypeError('boom'), 'SY_PREDICTOR_ERROR').code, 'SY_PREDICTOR_ERROR');
});

test('status, close code and retryability come from the one table', () => {
  assert.equal(httpStatusOf('SY_DEADLINE_EXCEEDED'), 504);
  assert.equal(httpStatusOf('whatever'), 500);
  assert.equal(wsCloseCodeOf('SY_UNAUTHORIZED'), 4401);
  assert.equal(isRetryable('SY_REPLICA_LOST'), true);
  assert.equal(isRetryable('SY_PREDICTOR_ERROR'), false);
});
