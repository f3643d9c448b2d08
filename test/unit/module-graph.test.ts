import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { collectModuleGraph, packageOf, scanSpecifiers } from '../../workers/cluster/module-graph.js';
import { example, repoRoot } from '../helpers/gateway.js';

describe('module graph', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-graph-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds static, re-exported, side-effect, dynamic and require specifiers', () => {
    const source = [
      "import a from './a.js';",
      "import { b,\n  c } from '../b';",
      "export * from './c.mjs';",
      "import './side.js';",
      "const d = await import('./d.js');",
      "const e = require(\"e-pkg/sub\");",
      "import type { T } from './types.js';",
    ].join('\n');
    assert.deepEqual(scanSpecifiers(source).sort(), ['../b', './a.js', './c.mjs', './d.js', './side.js', './types.js', 'e-pkg/sub'].sort());
  });

  it('names packages by bare specifier, built-ins excluded', () => {
    assert.equal(packageOf('fast-png'), 'fast-png');
    assert.equal(packageOf('@nats-io/kv/lib/x.js'), '@nats-io/kv');
    assert.equal(packageOf('switchyard'), 'switchyard');
    assert.equal(packageOf('node:fs'), undefined);
    assert.equal(packageOf('fs/promises'), undefined);
    assert.equal(packageOf('./x.js'), undefined);
  });

  it('collects the compiled stream example with the errors module it imports', async () => {
    const graph = await collectModuleGraph(example('stream/predictor.js'));
    assert.equal(graph.root, path.join(repoRoot, 'dist'));
    assert.equal(graph.entry, 'examples/stream/predictor.js');
    assert.ok(graph.files.includes('workers/protocol/errors.js'), graph.files.join(', '));
    assert.deepEqual(graph.scopes, [{ dir: '', type: 'module' }]);
  });

  it('follows TypeScript .js specifiers to .ts files, index files and JSON, and records packages', async () => {
    mkdirSync(path.join(dir, 'src', 'lib'), { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), '{"type":"commonjs"}');
    writeFileSync(path.join(dir, 'src', 'package.json'), '{"type":"module"}');
    writeFileSync(path.join(dir, 'src', 'main.ts'), "import { f } from './lib/index.js';\nimport g from './lib';\nimport png from 'fast-png';\nimport data from './data.json' with { type: 'json' };\n// import nothing from './missing.js';\nexport default {};\n");
    writeFileSync(path.join(dir, 'src', 'lib', 'index.ts'), "export { h } from '../../shared.cjs';\nexport const f = 1;\n");
    writeFileSync(path.join(dir, 'src', 'data.json'), '{}');
    writeFileSync(path.join(dir, 'shared.cjs'), "module.exports = require('@scope/pkg');\n");
    const graph = await collectModuleGraph(path.join(dir, 'src', 'main.ts'));
    assert.equal(graph.root, dir);
    assert.equal(graph.entry, 'src/main.ts');
    assert.deepEqual(graph.files, ['shared.cjs', 'src/data.json', 'src/lib/index.ts', 'src/main.ts']);
    assert.deepEqual(graph.packages, ['@scope/pkg', 'fast-png']);
    assert.deepEqual(graph.scopes, [
      { dir: '', type: 'commonjs' },
      { dir: 'src', type: 'module' },
    ]);
  });
});
