/**
 * A predictor answers a file request with a path. Only regular files inside the endpoint's output
 * folder are served, and the check is made on the open descriptor, never on the name: the file is
 * opened once without following a final symlink (O_NOFOLLOW, O_NONBLOCK so a FIFO cannot block the
 * thread), then the descriptor is checked (a regular file, and where the kernel says it lives is
 * inside the folder) and that descriptor is what gets served. Swapping the name for a symlink after
 * `predict` returned changes nothing: the descriptor still points at the file that was checked.
 *
 * Descriptors belong to the process, so one opened in a replica thread is served by the gateway's
 * thread; whoever receives it closes it.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { SwitchyardError } from '../protocol/errors.js';

export interface OpenedOutputFile {
  /** The name the predictor gave, resolved inside the folder (used only to delete it afterwards). */
  path: string;
  /** An open, checked, read-only descriptor: serve this, then close it. */
  fd: number;
  size: number;
}

const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function refused(message: string): SwitchyardError {
  return new SwitchyardError('SY_FILE_REFUSED', message);
}

/** Where the open descriptor really is: the kernel's own answer on Linux. */
function locationOf(fd: number, opened: string): string | undefined {
  if (process.platform === 'linux') {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // /proc not mounted: fall back to comparing identities below.
    }
  }
  // Elsewhere: the name, resolved, must still be the very file (device and inode) that was opened.
  let real: string;
  try {
    real = realpathSync(opened);
  } catch {
    return undefined;
  }
  const [a, b] = [fstatSync(fd), statSync(real)];
  return a.dev === b.dev && a.ino === b.ino ? real : undefined;
}

/** Opens and checks the file a predictor named; throws a coded error (and holds no descriptor) when it may not be served. */
export function openOutputFile(result: unknown, outputDir: string): OpenedOutputFile {
  if (typeof result !== 'string' || result.length === 0) {
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', 'for a file request the predictor must return the path of the file it wrote');
  }
  let realDir: string;
  try {
    realDir = realpathSync(outputDir);
  } catch {
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', 'the output folder does not exist');
  }
  const named = path.resolve(outputDir, result);
  let fd: number;
  try {
    fd = openSync(named, OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ELOOP: the name is a symlink. Never followed, whatever it points at.
    if (code === 'ELOOP' || code === 'EMLINK') throw refused('the predictor returned a symbolic link; only regular files inside its output folder are served');
    if (code === 'EISDIR') throw refused('the predictor returned a path that is not a regular file');
    throw new SwitchyardError('SY_PREDICTOR_OUTPUT', 'the predictor returned a file path that does not exist');
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refused('the predictor returned a path that is not a regular file');
    const where = locationOf(fd, named);
    if (where === undefined || !where.startsWith(realDir + path.sep)) {
      throw refused('the predictor returned a path outside its output folder; nothing was served');
    }
    return { path: named, fd, size: stat.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
