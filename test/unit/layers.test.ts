/**
 * The layering rule, checked on the sources: dependencies run gateway/ → workers/ → native/, never
 * upward; only native/ imports native bindings; the serving code never loads bench/ or test/ code
 * at start (a type-only import or a lazy `import()` is allowed, since neither loads anything
 * until it runs).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LAYERS = ['gateway', 'workers', 'native'] as const;
type Layer = (typeof LAYERS)[number];
/** What each folder may import from, besides itself and packages. */
const ALLOWED: Record<Layer, readonly string[]> = {
  gateway: ['workers', 'native'],
  workers: ['native'],
  native: [],
};
const NATIVE_BINDINGS = ['uWebSockets.js', 'onnxruntime-node'];

interface ImportSite {
  file: string;
  line: number;
  spec: string;
  typeOnly: boolean;
  lazy: boolean;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): ImportSite[] {
  const text = readFileSync(file, 'utf8');
  const sites: ImportSite[] = [];
  // Static imports and re-exports (possibly spanning lines), then dynamic import().
  const staticRe = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gms;
  for (const m of text.matchAll(staticRe)) {
    sites.push({ file, line: text.slice(0, m.index).split('\n').length, spec: m[3]!, typeOnly: m[2] !== undefined, lazy: false });
  }
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    sites.push({ file, line: text.slice(0, m.index).split('\n').length, spec: m[1]!, typeOnly: false, lazy: true });
  }
  return sites;
}

function topFolder(absolute: string): string {
  return path.relative(ROOT, absolute).split(path.sep)[0]!;
}

describe('layers', () => {
  const all = LAYERS.flatMap((layer) => sources(path.join(ROOT, layer)).map((file) => ({ layer, file })));

  it('finds the sources it checks', () => {
    for (const layer of LAYERS) assert.ok(all.some((s) => s.layer === layer), `no sources under ${layer}/`);
  });

  it('imports run gateway → workers → native, never upward', () => {
    const bad: string[] = [];
    for (const { layer, file } of all) {
      for (const site of importsOf(file)) {
        if (!site.spec.startsWith('.')) continue;
        const target = topFolder(path.resolve(path.dirname(file), site.spec));
        if (target === layer || ALLOWED[layer].includes(target)) continue;
        if (layer === 'gateway' && target === 'bench' && (site.typeOnly || site.lazy)) continue;
        bad.push(`${path.relative(ROOT, file)}:${site.line} imports ${site.spec} (${layer}/ → ${target}/)`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('only native/ imports native bindings', () => {
    const bad = all
      .filter(({ layer }) => layer !== 'native')
      .flatMap(({ file }) => importsOf(file))
      .filter((site) => NATIVE_BINDINGS.includes(site.spec) && !site.typeOnly)
      .map((site) => `${path.relative(ROOT, site.file)}:${site.line} imports ${site.spec}`);
    assert.deepEqual(bad, []);
  });

  it('the checker sees an upward import when there is one', () => {
    // Guards the regex: a rule that matches nothing would pass forever.
    const sites = importsOf(path.join(ROOT, 'gateway', 'gateway.ts'));
    assert.ok(sites.some((s) => s.spec.startsWith('../workers/')), 'gateway.ts imports workers/, and the checker must see it');
  });
});
