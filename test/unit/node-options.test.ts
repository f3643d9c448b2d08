import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SUBJECT_PREFIX } from '../../workers/cluster/subjects.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, NodeOptionsError, parseNodeAgentOptions } from '../../workers/node/options.js';
import { DEFAULT_POLL_US } from '../../workers/pool/polling.js';

const refused = (pattern: RegExp) => (err: unknown) => err instanceof NodeOptionsError && err.code === 'SY_NODE_OPTIONS' && pattern.test(err.message);

test('fills every default, and an option given as undefined gets its default', () => {
  const o = parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', name: 'n1', prefix: undefined, devices: undefined });
  assert.equal(o.devices, 'auto');
  assert.equal(o.prefix, DEFAULT_SUBJECT_PREFIX);
  assert.equal(o.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS);
  assert.equal(o.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS);
  assert.equal(o.maxReplicas, undefined);
  assert.equal(o.pollUs, DEFAULT_POLL_US);
  assert.equal(parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', pollUs: 0 }).pollUs, 0);
  assert.match(parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu' }).name, /^[A-Za-z0-9_-]{1,64}$/);
});

test('refuses what cannot work, naming the option', () => {
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: '' }), refused(/--region is required/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', name: 'a.b' }), refused(/--name must be/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', prefix: 'a..b' }), refused(/--prefix must be/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', token: 't', credsFile: 'x.creds' }), refused(/one NATS credential/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', user: 'u' }), refused(/--user and --password go together/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', heartbeatIntervalMs: 0 }), NodeOptionsError);
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', pollUs: -1 }), refused(/--poll-us must be 0 or more/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', pollUs: 20_000 }), refused(/--poll-us must be at most 10000/));
  assert.throws(() => parseNodeAgentOptions({ nats: 'nats://n:4222', region: 'eu', maxReplica: 2 } as never), refused(/unknown option maxReplica/));
});
