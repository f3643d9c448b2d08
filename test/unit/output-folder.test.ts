import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pruneEmptyFolders, sweepDeadProcessFolders } from '../../workers/pool/output-folder.js';

function base(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'switchyard-output-'));
}

test('pruning removes empty folders and keeps every file with the folders that hold it', () => {
  const root = base();
  try {
    mkdirSync(path.join(root, 'a', 'empty', 'deeper'), { recursive: true });
    mkdirSync(path.join(root, 'b', 'kept'), { recursive: true });
    writeFileSync(path.join(root, 'b', 'kept', 'out.png'), 'png');
    pruneEmptyFolders(root);
    assert.equal(existsSync(path.join(root, 'a')), false);
    assert.equal(existsSync(path.join(root, 'b', 'kept', 'out.png')), true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the sweep clears the empty folders of processes that are gone, and never those of live ones', () => {
  const root = base();
  const live = new Set([4242, process.pid]);
  try {
    for (const name of [`echo-${process.pid}`, 'echo-4242', 'echo-999001', 'node-eu-1-999002', 'image-999003', 'not-a-pid-folder']) {
      mkdirSync(path.join(root, name, 'sub'), { recursive: true });
    }
    writeFileSync(path.join(root, 'image-999003', 'sub', 'kept.png'), 'png');
    sweepDeadProcessFolders(root, (pid) => live.has(pid));
    assert.equal(existsSync(path.join(root, `echo-${process.pid}`, 'sub')), true, "this process's own folder stays");
    assert.equal(existsSync(path.join(root, 'echo-4242', 'sub')), true, "a live process's folder stays");
    assert.equal(existsSync(path.join(root, 'echo-999001')), false);
    assert.equal(existsSync(path.join(root, 'node-eu-1-999002')), false);
    assert.equal(existsSync(path.join(root, 'image-999003', 'sub', 'kept.png')), true, 'a kept file stays');
    assert.equal(existsSync(path.join(root, 'not-a-pid-folder', 'sub')), true, 'a folder not named after a process is left alone');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the sweep of a missing folder does nothing', () => {
  assert.doesNotThrow(() => sweepDeadProcessFolders(path.join(os.tmpdir(), 'switchyard-no-such-folder-for-sure')));
});
