/**
 * Where a replica writes the files it answers with, unless the endpoint names an `output_dir`.
 * A file response is written, opened, read and deleted once per request: on a disk file system
 * (here: ext4 mounted with `discard`) the write and the delete cost more than sending the bytes.
 * So the default is a memory-backed file system when the machine has one we may write to:
 * /dev/shm, then $XDG_RUNTIME_DIR (both tmpfs on most Linux systems), then the OS temporary folder
 * (reported as memory-backed only when it is one, e.g. tmpfs /tmp). Files never outlive their
 * response unless the endpoint keeps them (`keep_files`), so they take little of that memory.
 */
import { accessSync, constants, readdirSync, rmdirSync, statfsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** statfs f_type of file systems whose files live in memory (Linux: linux/magic.h). */
const MEMORY_FS_TYPES = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

export interface OutputRoot {
  /** The folder endpoints' default output folders go under (`<root>/switchyard/<endpoint>-<pid>`). */
  path: string;
  /** Whether files there live in memory (tmpfs, ramfs). */
  memoryBacked: boolean;
}

/** Whether `dir` is on a memory-backed file system; false when that cannot be told. */
export function isMemoryBacked(dir: string): boolean {
  try {
    return MEMORY_FS_TYPES.has(statfsSync(dir).type);
  } catch {
    return false;
  }
}

function writableFolder(dir: string | undefined): dir is string {
  if (!dir || !path.isAbsolute(dir)) return false;
  try {
    if (!statSync(dir).isDirectory()) return false;
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Picks the root: the first writable memory-backed candidate, else the OS temporary folder. */
export function pickOutputRoot(env: NodeJS.ProcessEnv = process.env, tmpdir: string = os.tmpdir()): OutputRoot {
  for (const candidate of ['/dev/shm', env.XDG_RUNTIME_DIR]) {
    if (writableFolder(candidate) && isMemoryBacked(candidate)) return { path: candidate, memoryBacked: true };
  }
  return { path: tmpdir, memoryBacked: isMemoryBacked(tmpdir) };
}

let chosen: OutputRoot | undefined;

/**
 * This process's default root, decided once. Deciding it also clears away the empty default
 * folders of processes that are gone (see sweepDeadProcessFolders).
 */
export function defaultOutputRoot(): OutputRoot {
  if (chosen === undefined) {
    chosen = pickOutputRoot();
    sweepDeadProcessFolders(path.join(chosen.path, 'switchyard'));
  }
  return chosen;
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Default output folders are named after their process (`<endpoint>-<pid>`, `node-<name>-<pid>`)
 * and live in shared memory, so each gateway or node agent that ever ran would leave its folders
 * behind. The next one to start removes those of processes no longer running, when they are empty:
 * files an endpoint kept (`keep_files`) stay, with their folders. Folders of a live process are
 * never touched, since its replicas may write there at any moment.
 */
export function sweepDeadProcessFolders(base: string, isAlive: (pid: number) => boolean = processIsAlive): void {
  let entries;
  try {
    entries = readdirSync(base, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = /-(\d+)$/.exec(entry.name)?.[1];
    if (!entry.isDirectory() || pid === undefined || Number(pid) === process.pid || isAlive(Number(pid))) continue;
    pruneEmptyFolders(path.join(base, entry.name));
  }
}

/** An endpoint's default output folder in this process. */
export function defaultOutputDir(endpoint: string): string {
  return path.join(defaultOutputRoot().path, 'switchyard', `${endpoint}-${process.pid}`);
}

/**
 * Removes the empty folders of `dir` and then `dir` itself when empty, leaving every file (and
 * the folders holding one) where it is: a process's default output folders live in shared memory
 * (/dev/shm) and would otherwise pile up, one per endpoint per process, while files an endpoint
 * keeps (`keep_files`) must survive it.
 */
export function pruneEmptyFolders(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) pruneEmptyFolders(path.join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (a kept file), or gone already.
  }
}
