/**
 * Where a node finds the packages a predictor bundle imports, so they resolve as they did on the
 * gateway: `switchyard` (the public API) is always this agent's own package, the one whose
 * runtime will load the predictor; any other package comes from the node's work dir and its
 * parents first (a project the operator set up for its predictors), then from the packages this
 * agent was installed with (what a demo or a plain install has on every machine).
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PackageLocator } from '../cluster/bundles.js';

const SELF = 'switchyard';

function ancestors(dir: string): string[] {
  const out = [dir];
  while (path.dirname(out[out.length - 1]!) !== out[out.length - 1]) out.push(path.dirname(out[out.length - 1]!));
  return out;
}

/** The folder of this agent's own package (the one with `"name": "switchyard"` above this file). */
export function ownPackageRoot(): string | undefined {
  for (const dir of ancestors(path.dirname(fileURLToPath(import.meta.url)))) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === SELF) return dir;
    } catch {
      // No package.json here, or not JSON: keep looking upwards.
    }
  }
  return undefined;
}

function findIn(dirs: string[], name: string): string | undefined {
  for (const dir of dirs) {
    const candidate = path.join(dir, 'node_modules', ...name.split('/'));
    if (existsSync(path.join(candidate, 'package.json'))) return realpathSync(candidate);
  }
  return undefined;
}

export function packageLocator(workDir: string): PackageLocator {
  const own = ownPackageRoot();
  const ownDirs = own ? ancestors(own) : [];
  const workDirs = ancestors(path.resolve(workDir));
  return (name) => {
    if (name === SELF) return own;
    if (findIn(workDirs, name)) return undefined;
    return findIn(ownDirs, name);
  };
}
