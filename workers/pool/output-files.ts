/**
 * A predictor answers a file request with a path. Only regular files inside the endpoint's output
 * folder are served: the path is resolved through symlinks first, so `../`, absolute paths
 * elsewhere and links pointing out are all refused.
 */
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { SwitchyardError } from '../protocol/errors.js';

export function resolveOutputFile(result: unknown, outputDir: string): { path: string; size: number } {
  if (typeof result !== 'string' || result.length === 0) {
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', 'for a file request the predictor must return the path of the file it wrote');
  }
  let real: string;
  let realDir: string;
  try {
    realDir = realpathSync(outputDir);
    real = realpathSync(path.resolve(outputDir, result));
  } catch {
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', 'the predictor returned a file path that does not exist');
  }
  if (!real.startsWith(realDir + path.sep)) {
    throw new SwitchyardError('SY_FILE_REFUSED', 'the predictor returned a path outside its output folder; nothing was served');
  }
  const stat = statSync(real);
  if (!stat.isFile()) {
    throw new SwitchyardError('SY_FILE_REFUSED', 'the predictor returned a path that is not a regular file');
  }
  return { path: real, size: stat.size };
}
