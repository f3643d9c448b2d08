/**
 * A production install (`npm ci --omit=dev`) must run `switchyard serve` and `switchyard bench`:
 * every package reachable from the CLI, following static and lazy imports and the load threads'
 * entry file, is a runtime dependency (or a node builtin), never a devDependency.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = path.join(DIST, '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm;

function packagesReachable(entries: string[]): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    // Comments may quote import statements; only code counts.
    const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2] ?? match[3];
      if (!spec) continue;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (existsSync(target)) queue.push(target);
        continue;
      }
      if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (!packages.has(name)) packages.set(name, path.relative(DIST, file));
    }
  }
  return packages;
}

test('serve and bench need no devDependency', () => {
  const entries = [path.join(DIST, 'gateway/cli/main.js'), path.join(DIST, 'gateway/cli/bench-main.js'), path.join(DIST, 'bench/engine/command.js'), path.join(DIST, 'bench/engine/worker.js')];
  for (const entry of entries) assert.ok(existsSync(entry), `${entry} is built`);
  const packages = packagesReachable(entries);
  assert.ok(packages.has('hdr-histogram-js'), 'the walk reaches the bench engine');
  for (const [name, from] of packages) {
    assert.ok(name in pkg.dependencies, `${name} (imported by ${from}) must be a dependency${name in pkg.devDependencies ? ', not a devDependency' : ''}`);
  }
});
