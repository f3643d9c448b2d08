/**
 * The module graph of a predictor: the entry file and every file it reaches through relative
 * imports (static `import`/`export ... from`, `import('literal')`, `require('literal')`), plus the
 * packages it names by bare specifier. This is what has to travel to a node for the predictor to
 * load there as it does here: relative files go along, packages are resolved on the node.
 *
 * Specifiers are found by a scanner, not a parser: a specifier in a comment or string that names
 * an existing file only makes the graph one file larger, while a missed import would break the
 * predictor, so the scan errs on the side of finding too much. Relative specifiers resolve the way
 * Node and TypeScript resolve them: the exact file, then TypeScript's `.js` → `.ts` convention,
 * then the extensions and `index` files that tsx and CommonJS accept.
 */
import { readFile, stat } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';

export interface ModuleGraph {
  /** The deepest folder that holds every file of the graph. */
  root: string;
  /** The entry file, relative to `root` (POSIX separators). */
  entry: string;
  /** Every file of the graph (entry included), relative to `root`, sorted. */
  files: string[];
  /** Package names imported by bare specifier (`fast-png`, `@scope/pkg`), sorted; Node built-ins excluded. */
  packages: string[];
  /**
   * The module type (`"type"` of the nearest package.json) of each folder, relative to `root`,
   * that holds a package.json above some file of the graph: a `.js` file is ESM or CommonJS by it.
   */
  scopes: Array<{ dir: string; type: 'module' | 'commonjs' }>;
}

const SOURCE = /\.(m|c)?(j|t)sx?$/;
const SPECIFIER_PATTERNS = [
  // import x from '...'; import { a } from '...'; export * from '...'; export { a } from '...'
  /\b(?:import|export)\s[^'"`;]*?\bfrom\s*(['"])([^'"\n]+)\1/g,
  // import '...' (side effects)
  /\bimport\s*(['"])([^'"\n]+)\1/g,
  // import('...'), require('...')
  /\b(?:import|require)\s*\(\s*(['"`])([^'"`\n]+)\1\s*[,)]/g,
];
const TS_FOR_JS: Record<string, string[]> = { '.js': ['.ts', '.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'], '.jsx': ['.tsx'] };
const TRY_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs', '.cjs', '.json'];
const BUILTINS = new Set(builtinModules);

/** Every specifier `source` mentions in an import position. */
export function scanSpecifiers(source: string): string[] {
  const found = new Set<string>();
  for (const pattern of SPECIFIER_PATTERNS) {
    for (const match of source.matchAll(pattern)) {
      const specifier = match[2];
      if (specifier) found.add(specifier);
    }
  }
  return [...found];
}

/** The package a bare specifier names (`@scope/pkg/sub` → `@scope/pkg`), or undefined for anything else. */
export function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return undefined;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  if (!name || BUILTINS.has(name) || BUILTINS.has(specifier)) return undefined;
  return name;
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() === true;
}

/** The file a relative specifier names from `fromDir`, or undefined when none exists. */
export async function resolveRelative(specifier: string, fromDir: string): Promise<string | undefined> {
  const target = path.resolve(fromDir, specifier.split(/[?#]/)[0] ?? specifier);
  if (await isFile(target)) return target;
  const ext = path.extname(target);
  for (const alt of TS_FOR_JS[ext] ?? []) {
    const candidate = target.slice(0, -ext.length) + alt;
    if (await isFile(candidate)) return candidate;
  }
  for (const alt of TRY_EXTENSIONS) {
    if (await isFile(target + alt)) return target + alt;
  }
  for (const alt of TRY_EXTENSIONS) {
    const index = path.join(target, `index${alt}`);
    if (await isFile(index)) return index;
  }
  return undefined;
}

/** The folder of the nearest package.json at or above `dir`, and the module type it declares. */
async function packageScope(dir: string, cache: Map<string, { dir: string; type: 'module' | 'commonjs' } | null>): Promise<{ dir: string; type: 'module' | 'commonjs' } | null> {
  const known = cache.get(dir);
  if (known !== undefined) return known;
  let scope: { dir: string; type: 'module' | 'commonjs' } | null = null;
  const text = await readFile(path.join(dir, 'package.json'), 'utf8').catch(() => undefined);
  if (text !== undefined) {
    let type: unknown;
    try {
      type = (JSON.parse(text) as { type?: unknown }).type;
    } catch {
      type = undefined;
    }
    scope = { dir, type: type === 'module' ? 'module' : 'commonjs' };
  } else if (path.dirname(dir) !== dir) {
    scope = await packageScope(path.dirname(dir), cache);
  }
  cache.set(dir, scope);
  return scope;
}

function commonRoot(files: string[]): string {
  let root = path.dirname(files[0] ?? '.');
  for (const file of files) {
    while (!(file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) root = path.dirname(root);
  }
  return root;
}

const toPosix = (p: string) => p.split(path.sep).join('/');

/** Walks the graph from `entry` (any path; resolved against the working directory). */
export async function collectModuleGraph(entry: string): Promise<ModuleGraph> {
  const start = path.resolve(entry);
  if (!(await isFile(start))) throw new Error(`predictor module ${entry} does not exist`);
  const seen = new Set<string>([start]);
  const packages = new Set<string>();
  const queue = [start];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (!SOURCE.test(file)) continue;
    const source = await readFile(file, 'utf8');
    for (const specifier of scanSpecifiers(source)) {
      if (specifier.startsWith('./') || specifier.startsWith('../')) {
        const target = await resolveRelative(specifier, path.dirname(file));
        if (target && !seen.has(target)) {
          seen.add(target);
          queue.push(target);
        }
        continue;
      }
      const pkg = packageOf(specifier);
      if (pkg) packages.add(pkg);
    }
  }
  const files = [...seen];
  const root = commonRoot(files);
  const scopeCache = new Map<string, { dir: string; type: 'module' | 'commonjs' } | null>();
  const scopes = new Map<string, 'module' | 'commonjs'>();
  for (const file of files) {
    const scope = await packageScope(path.dirname(file), scopeCache);
    // A scope above the root is pinned at the root; one inside it keeps its place.
    const dir = scope && (scope.dir === root || scope.dir.startsWith(root + path.sep)) ? toPosix(path.relative(root, scope.dir)) : '';
    if (!scopes.has(dir)) scopes.set(dir, scope?.type ?? 'commonjs');
  }
  return {
    root,
    entry: toPosix(path.relative(root, start)),
    files: files.map((f) => toPosix(path.relative(root, f))).sort(),
    packages: [...packages].sort(),
    scopes: [...scopes].map(([dir, type]) => ({ dir, type })).sort((a, b) => a.dir.localeCompare(b.dir)),
  };
}
