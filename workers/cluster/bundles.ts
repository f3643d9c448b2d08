/**
 * A predictor travels to a node as its whole module graph (module-graph.ts), as a content-addressed
 * folder: every file is an artifact named by its hash, and a manifest (itself an artifact) lists
 * them by their path relative to the graph's root, with the entry, the module type of each
 * package scope and the packages the graph imports. The manifest's hash names the bundle, so a
 * predictor whose files did not change is fetched once per node, and one whose helper changed is a
 * new bundle even if its entry file is the same.
 *
 * On the node the folder is rebuilt with the same layout (relative imports resolve as they did on
 * the gateway), a package.json per scope keeps `.js` files ESM or CommonJS as they were, and a
 * `node_modules` inside the folder links the packages the node would not otherwise find from its
 * work dir (see the node agent's package locator). A bundle appears under its final name only
 * once complete, so a crash mid-fetch leaves nothing a later load could mistake for it.
 *
 * A bundle is a folder instead of one esbuild output file because the files keep their place:
 * `import.meta.url`, `__dirname` and stack traces mean the same on the node as on the gateway.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SwitchyardError } from '../protocol/errors.js';
import type { ArtifactStore } from './artifacts.js';
import { collectModuleGraph } from './module-graph.js';
import type { ArtifactRef } from './subjects.js';

export const BUNDLE_FORMAT = 'switchyard-bundle/1';

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  /** The entry module, relative to the bundle's root. */
  entry: string;
  files: Array<{ path: string; sha256: string; size: number }>;
  scopes: Array<{ dir: string; type: 'module' | 'commonjs' }>;
  packages: string[];
}

/** Where a node finds a package the bundle imports, or undefined when the work dir's own resolution should find it. */
export type PackageLocator = (name: string) => string | undefined;

const SAFE_SEGMENT = /^[^/\\\0]+$/;

/** A relative POSIX path with no `..`, no absolute start and no empty or hidden-parent segment. */
function isSafeRelative(p: string): boolean {
  return p === '' || p.split('/').every((segment) => SAFE_SEGMENT.test(segment) && segment !== '.' && segment !== '..');
}

function isPackageName(name: string): boolean {
  return /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name);
}

function parseManifest(bytes: Uint8Array, ref: ArtifactRef): BundleManifest {
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as BundleManifest;
  } catch {
    throw new SwitchyardError('SY_NO_REPLICA', `artifact ${ref.name} is not a predictor bundle manifest`);
  }
  const ok =
    manifest?.format === BUNDLE_FORMAT &&
    typeof manifest.entry === 'string' &&
    isSafeRelative(manifest.entry) &&
    Array.isArray(manifest.files) &&
    manifest.files.every((f) => typeof f?.path === 'string' && isSafeRelative(f.path) && /^[0-9a-f]{64}$/.test(f.sha256) && Number.isInteger(f.size)) &&
    manifest.files.some((f) => f.path === manifest.entry) &&
    Array.isArray(manifest.scopes) &&
    manifest.scopes.every((s) => typeof s?.dir === 'string' && isSafeRelative(s.dir) && (s.type === 'module' || s.type === 'commonjs')) &&
    Array.isArray(manifest.packages) &&
    manifest.packages.every((p) => typeof p === 'string' && isPackageName(p));
  if (!ok) throw new SwitchyardError('SY_NO_REPLICA', `artifact ${ref.name} is not a valid predictor bundle manifest`);
  return manifest;
}

/** Uploads the module graph of `entry` (each file once, by hash) and its manifest; returns the manifest's reference. */
export async function putBundle(store: ArtifactStore, entry: string): Promise<ArtifactRef> {
  let graph;
  try {
    graph = await collectModuleGraph(entry);
  } catch (err) {
    throw new SwitchyardError('SY_PREDICTOR_ERROR', `cannot collect the files of predictor ${entry}: ${(err as Error).message}`);
  }
  const files: BundleManifest['files'] = [];
  for (const file of graph.files) {
    const ref = await store.put(path.join(graph.root, ...file.split('/')));
    files.push({ path: file, sha256: ref.sha256, size: ref.size });
  }
  const manifest: BundleManifest = { format: BUNDLE_FORMAT, entry: graph.entry, files, scopes: graph.scopes, packages: graph.packages };
  return store.putBytes(Buffer.from(JSON.stringify(manifest)), `${path.basename(graph.entry)}.bundle.json`);
}

const building = new Map<string, Promise<string>>();

/**
 * The local path of the bundle's entry module, its folder built under `cacheDir/bundles/<hash>`
 * the first time. Concurrent calls for one bundle share one build.
 */
export function materializeBundle(store: ArtifactStore, ref: ArtifactRef, cacheDir: string, locate: PackageLocator): Promise<string> {
  const dir = path.join(path.resolve(cacheDir), 'bundles', String(ref.sha256));
  let pending = building.get(dir);
  if (!pending) {
    pending = build(store, ref, dir, cacheDir, locate).finally(() => building.delete(dir));
    building.set(dir, pending);
  }
  return pending;
}

async function build(store: ArtifactStore, ref: ArtifactRef, dir: string, cacheDir: string, locate: PackageLocator): Promise<string> {
  const manifest = parseManifest(await store.read(ref), ref);
  const entry = path.join(dir, ...manifest.entry.split('/'));
  if ((await stat(dir).catch(() => undefined))?.isDirectory()) return entry;
  const staging = `${dir}.${randomBytes(6).toString('hex')}.partial`;
  try {
    for (const file of manifest.files) {
      const cached = await store.fetch({ sha256: file.sha256, name: path.posix.basename(file.path), size: file.size }, path.join(cacheDir, 'files'));
      const target = path.join(staging, ...file.path.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      // A hard link shares the cached bytes; a copy where the file system cannot link.
      await link(cached, target).catch(() => copyFile(cached, target));
    }
    const shipped = new Set(manifest.files.map((f) => f.path));
    for (const scope of manifest.scopes) {
      const file = scope.dir ? `${scope.dir}/package.json` : 'package.json';
      if (shipped.has(file)) continue;
      await mkdir(path.join(staging, ...scope.dir.split('/').filter(Boolean)), { recursive: true });
      await writeFile(path.join(staging, ...file.split('/')), JSON.stringify({ type: scope.type }) + '\n');
    }
    for (const name of manifest.packages) {
      const found = locate(name);
      if (!found) continue;
      const target = path.join(staging, 'node_modules', ...name.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      await symlink(found, target, 'dir');
    }
    await rename(staging, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another process built the same bundle first: the bytes are the same, keep theirs.
      if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw err;
    });
    return entry;
  } catch (err) {
    if (err instanceof SwitchyardError) throw err;
    throw new SwitchyardError('SY_NO_REPLICA', `cannot build predictor bundle ${ref.name}: ${(err as Error).message}`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The manifest a bundle reference names, checked. */
export async function readBundleManifest(store: ArtifactStore, ref: ArtifactRef): Promise<BundleManifest> {
  return parseManifest(await store.read(ref), ref);
}
