/**
 * A file answer's descriptor is opened in the replica thread and closed by the gateway's thread
 * once sent. When the replica thread exits it must not close that number again: by then the number
 * belongs to something else of the process (a socket, a file), and closing it under its owner
 * breaks it (for a socket libuv watches, the process aborts).
 */
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fixture, startGateway, tempDir } from '../helpers/gateway.js';

test('descriptors handed to the gateway are not closed again when their replica thread exits', async () => {
  const dir = tempDir('sy-fds-');
  const gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), produces: ['application/x-test'], output_dir: dir } } });
  const mine: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/inference/b`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-test' },
        body: JSON.stringify({ action: 'file', size: 1024 }),
      });
      assert.equal(res.status, 200);
      assert.equal((await res.arrayBuffer()).byteLength, 1024);
    }
    // The gateway closes a served descriptor after the answer: give that close a moment, then take
    // the lowest free numbers, which include the ones the replica opened.
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 32; i++) mine.push(openSync(path.join(dir, `mine-${i}`), 'w'));
  } finally {
    await gw.close();
  }
  // The replica thread has exited: every descriptor of ours is still open.
  const closedUnderUs = mine.filter((fd) => {
    try {
      fstatSync(fd);
      return false;
    } catch {
      return true;
    }
  });
  for (const fd of mine) if (!closedUnderUs.includes(fd)) closeSync(fd);
  assert.deepEqual(closedUnderUs, []);
});
