import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfigFile, validateConfig } from '../../gateway/config/load.js';
import { tempDir } from '../helpers/gateway.js';

function configError(raw: unknown): string {
  try {
    validateConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('defaults fill every field and the result is frozen', () => {
  const config = validateConfig({ endpoints: { a: { predictor: 'p.js' } } });
  assert.equal(config.server.port, 8080);
  assert.equal(config.endpoints.a!.max_concurrency, 32);
  assert.deepEqual(config.endpoints.a!.devices, ['cpu']);
  assert.ok(path.isAbsolute(config.endpoints.a!.predictor!));
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.endpoints.a));
  assert.throws(() => {
    (config.server as { port: number }).port = 1;
  });
});

test('unknown fields are errors that name the field', () => {
  assert.match(configError({ endpoints: { a: { predictor: 'p.js', replicaz: 2 } } }), /endpoints\.a: unknown field "replicaz"/);
  assert.match(configError({ server: { prot: 1 }, endpoints: {} }), /server: unknown field "prot"/);
});

test('wrong types and bounds name the field', () => {
  assert.match(configError({ endpoints: { a: { predictor: 'p.js', max_concurrency: 0 } } }), /endpoints\.a\.max_concurrency/);
  assert.match(configError({ endpoints: { a: { predictor: 'p.js', devices: ['tpu'] } } }), /endpoints\.a\.devices\.0: must be "cpu", "cuda:N" or "coreml"/);
  assert.match(configError({ server: { port: 70000 }, endpoints: {} }), /server\.port/);
  assert.match(
    configError({ endpoints: { a: { predictor: 'p.js', autoscaling: { min_replicas: 3, max_replicas: 2 } } } }),
    /endpoints\.a\.autoscaling\.max_replicas: max_replicas must be ≥ min_replicas/,
  );
});

test('an endpoint needs exactly one of predictor or model', () => {
  assert.match(configError({ endpoints: { a: {} } }), /exactly one of "predictor" or "model"/);
  assert.match(configError({ endpoints: { a: { predictor: 'p.js', model: 'm.onnx' } } }), /exactly one/);
});

test('a YAML file loads with paths relative to it; bad YAML and missing files are clear', () => {
  const dir = tempDir();
  const file = path.join(dir, 'switchyard.yaml');
  writeFileSync(file, 'server:\n  port: 9000\nendpoints:\n  m:\n    model: models/m.onnx\n    replicas: 2\n');
  const config = loadConfigFile(file);
  assert.equal(config.server.port, 9000);
  assert.equal(config.endpoints.m!.model, path.join(dir, 'models/m.onnx'));
  writeFileSync(file, 'endpoints: [\n');
  assert.throws(() => loadConfigFile(file), /not valid YAML/);
  assert.throws(() => loadConfigFile(path.join(dir, 'missing.yaml')), /cannot read config/);
});
