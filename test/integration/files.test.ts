import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decode } from 'fast-png';
import { renderPng } from '../../examples/image/predictor.js';
import { isMemoryBacked, pickOutputRoot } from '../../workers/pool/output-folder.js';
import { example, fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

interface Answer {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

async function post(url: string, input: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(input) });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

const errorCode = (a: Answer) => (JSON.parse(a.bytes.toString('utf8')) as { error: { code: string } }).error.code;
const pattern = (size: number) => new Uint8Array(size).map((_, i) => i % 251);
const filesIn = (dir: string) => readdirSync(dir).filter((f) => !f.startsWith('.'));

describe('file responses', () => {
  let gw: TestGateway;
  const keptDir = tempDir();
  const cleanDir = tempDir();
  const behavioursDir = tempDir();
  const bytesDir = tempDir();
  const picture = { text: 'a cat', width: 300, height: 200 };
  const expectedPng = Buffer.from(renderPng({ ...picture, pattern: 'waves' }));

  before(async () => {
    gw = await startGateway({
      endpoints: {
        kept: { predictor: example('image/predictor.js'), produces: ['image/png'], output_dir: keptDir, keep_files: true, settings: { write_files: true } },
        image: { predictor: example('image/predictor.js'), produces: ['image/png'], output_dir: cleanDir, settings: { write_files: true } },
        png: { predictor: example('image/predictor.js'), produces: ['image/png'], output_dir: bytesDir },
        defaults: { predictor: example('image/predictor.js'), produces: ['image/png'], keep_files: true, settings: { write_files: true } },
        b: { predictor: fixture('behaviours'), produces: ['image/png', 'application/x-test'], output_dir: behavioursDir },
      },
    });
  });
  after(() => gw.close());

  test('Accept: image/png sends the file the predictor wrote, byte for byte, with its type and length', async () => {
    const before = new Set(filesIn(keptDir));
    const answer = await post(`${gw.url}/inference/kept`, picture, { accept: 'image/png' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-type'), 'image/png');
    assert.equal(answer.headers.get('accept-ranges'), 'bytes');
    const written = filesIn(keptDir).filter((f) => !before.has(f));
    assert.equal(written.length, 1, 'one file written and kept');
    const onDisk = readFileSync(path.join(keptDir, written[0]!));
    assert.equal(Number(answer.headers.get('content-length')), onDisk.length);
    assert.ok(answer.bytes.equals(onDisk), 'the bytes are the file on disk');
    assert.ok(answer.bytes.equals(expectedPng), 'and the picture the input asked for');
    const png = decode(answer.bytes);
    assert.deepEqual([png.width, png.height], [300, 200]);
  });

  test('Range: one range is 206 with Content-Range; suffix and open ranges; a range past the end is 416', async () => {
    const size = expectedPng.length;
    const url = `${gw.url}/inference/kept`;
    const first = await post(url, picture, { accept: 'image/png', range: 'bytes=0-99' });
    assert.equal(first.status, 206);
    assert.equal(first.headers.get('content-range'), `bytes 0-99/${size}`);
    assert.equal(first.headers.get('content-length'), '100');
    assert.ok(first.bytes.equals(expectedPng.subarray(0, 100)));

    const tail = await post(url, picture, { accept: 'image/png', range: 'bytes=-50' });
    assert.equal(tail.status, 206);
    assert.equal(tail.headers.get('content-range'), `bytes ${size - 50}-${size - 1}/${size}`);
    assert.ok(tail.bytes.equals(expectedPng.subarray(size - 50)));

    const rest = await post(url, picture, { accept: 'image/png', range: 'bytes=1000-' });
    assert.equal(rest.status, 206);
    assert.ok(rest.bytes.equals(expectedPng.subarray(1000)));

    const clamped = await post(url, picture, { accept: 'image/png', range: `bytes=${size - 10}-${size + 500}` });
    assert.equal(clamped.headers.get('content-range'), `bytes ${size - 10}-${size - 1}/${size}`);
    assert.equal(clamped.bytes.length, 10);

    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0', 'bytes=50-10']) {
      const refused = await post(url, picture, { accept: 'image/png', range });
      assert.equal(refused.status, 416, range);
      assert.equal(refused.headers.get('content-range'), `bytes */${size}`, range);
      assert.equal(errorCode(refused), 'SY_RANGE_NOT_SATISFIABLE', range);
    }

    // Several ranges are not served as multipart: the whole file, 200.
    const several = await post(url, picture, { accept: 'image/png', range: 'bytes=0-1,5-6' });
    assert.equal(several.status, 200);
    assert.ok(several.bytes.equals(expectedPng));
  });

  test('files are deleted once sent, after a range, after a 416, unless the endpoint keeps them', async () => {
    const url = `${gw.url}/inference/image`;
    assert.equal((await post(url, picture, { accept: 'image/png' })).status, 200);
    assert.equal((await post(url, picture, { accept: 'image/png', range: 'bytes=0-9' })).status, 206);
    assert.equal((await post(url, picture, { accept: 'image/png', range: 'bytes=999999999-' })).status, 416);
    await waitFor(() => filesIn(cleanDir).length === 0, 5000, 'the output folder to be empty');
    assert.ok(filesIn(keptDir).length > 0, 'keep_files keeps them');
  });

  test('a large file reaches a late reader whole, and is then removed', async () => {
    const size = 24 * 1024 * 1024;
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-test' }, body: JSON.stringify({ action: 'file', size }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-test');
    assert.equal(Number(res.headers.get('content-length')), size);
    // Read nothing for a while: the socket fills and the rest of the file waits for it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, size);
    assert.ok(bytes.equals(pattern(size)));
    await waitFor(() => filesIn(behavioursDir).filter((f) => f.startsWith('file-')).length === 0, 5000, 'the file to be removed');
  });

  test('a client that goes away mid-file stops the transfer and the file is removed', async () => {
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/inference/b`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-test' },
      body: JSON.stringify({ action: 'file', size: 64 * 1024 * 1024, value: 'abandoned.bin' }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    await waitFor(() => !existsSync(path.join(behavioursDir, 'abandoned.bin')), 5000, 'the file to be removed');
  });

  test('every path outside the output folder is refused with a coded 500, and nothing is served', async () => {
    const secret = 'SECRET-OUTSIDE-THE-OUTPUT-FOLDER';
    const outside = path.join(path.dirname(behavioursDir), `outside-${process.pid}-${Date.now()}.png`);
    writeFileSync(outside, secret);
    const link = `link-out-${Date.now()}.png`;
    symlinkSync(outside, path.join(behavioursDir, link));
    const attempts = [
      path.join('..', path.basename(outside)),
      `./../${path.basename(behavioursDir)}/../${path.basename(outside)}`,
      outside,
      '/etc/hostname',
      link,
      path.join(behavioursDir, link),
      '.',
      behavioursDir,
    ];
    for (const attempt of attempts) {
      const answer = await post(`${gw.url}/inference/b`, { action: 'path', value: attempt }, { accept: 'image/png' });
      assert.equal(answer.status, 500, attempt);
      assert.equal(answer.headers.get('content-type'), 'application/json', attempt);
      assert.equal(errorCode(answer), 'SY_FILE_REFUSED', attempt);
      assert.ok(!answer.bytes.toString('utf8').includes(secret), `${attempt}: nothing of the file is served`);
    }
    assert.equal(readFileSync(outside, 'utf8'), secret, 'a refused file is never deleted');

    const missing = await post(`${gw.url}/inference/b`, { action: 'path', value: 'never-written.png' }, { accept: 'image/png' });
    assert.equal(missing.status, 500);
    assert.equal(errorCode(missing), 'SY_PREDICTOR_OUTPUT');
  });

  test('a file swapped for a symlink right after predict returns: the original is served or refused, never the outside file', async () => {
    const secret = 'SECRET-BEHIND-THE-SWAPPED-LINK';
    const outside = path.join(path.dirname(behavioursDir), `swap-target-${process.pid}-${Date.now()}.png`);
    writeFileSync(outside, secret);
    for (let i = 0; i < 20; i++) {
      const answer = await post(`${gw.url}/inference/b`, { action: 'swap', value: outside }, { accept: 'image/png' });
      assert.ok(!answer.bytes.toString('utf8').includes('SECRET'), `attempt ${i}: (part of) the outside file was served`);
      if (answer.status === 200) assert.equal(answer.bytes.toString('utf8'), 'THE-ORIGINAL-FILE');
      else assert.equal(errorCode(answer), 'SY_FILE_REFUSED');
    }
    assert.equal(readFileSync(outside, 'utf8'), secret, 'the outside file is untouched');
  });

  test('bytes returned for a file type are served as the file, from memory: byte for byte, type, length, ranges; no file is created', async () => {
    const url = `${gw.url}/inference/png`;
    const answer = await post(url, picture, { accept: 'image/png' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-type'), 'image/png');
    assert.equal(answer.headers.get('accept-ranges'), 'bytes');
    assert.equal(Number(answer.headers.get('content-length')), expectedPng.length);
    assert.ok(answer.bytes.equals(expectedPng));
    // The example remembers the picture: a second request gets the same bytes (it returns a copy of what it keeps).
    assert.ok((await post(url, picture, { accept: 'image/png' })).bytes.equals(expectedPng));

    const size = expectedPng.length;
    const part = await post(url, picture, { accept: 'image/png', range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${size}`);
    assert.ok(part.bytes.equals(expectedPng.subarray(100, 200)));
    const tail = await post(url, picture, { accept: 'image/png', range: 'bytes=-7' });
    assert.ok(tail.bytes.equals(expectedPng.subarray(size - 7)));
    const refused = await post(url, picture, { accept: 'image/png', range: `bytes=${size}-` });
    assert.equal(refused.status, 416);
    assert.equal(refused.headers.get('content-range'), `bytes */${size}`);
    assert.equal(errorCode(refused), 'SY_RANGE_NOT_SATISFIABLE');
    assert.deepEqual(filesIn(bytesDir), [], 'nothing was written to the output folder');
  });

  test('24 MB of bytes answering a file request reach a late reader whole, without a file', async () => {
    const size = 24 * 1024 * 1024;
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-test' }, body: JSON.stringify({ action: 'bytes', size }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-test');
    assert.equal(Number(res.headers.get('content-length')), size);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.ok(bytes.equals(pattern(size)));
    assert.deepEqual(filesIn(behavioursDir).filter((f) => f.startsWith('file-')), []);
  });

  test('large bytes move to the gateway: returning the same ones again is a coded 500, not an empty answer', async () => {
    const ask = () => post(`${gw.url}/inference/b`, { action: 'same_bytes', size: 1024 * 1024 }, { accept: 'application/x-test' });
    const first = await ask();
    assert.equal(first.status, 200);
    assert.ok(first.bytes.equals(pattern(1024 * 1024)));
    const again = await ask();
    assert.equal(again.status, 500);
    assert.equal(errorCode(again), 'SY_PREDICTOR_OUTPUT');
    assert.match(JSON.parse(again.bytes.toString('utf8')).error.message, /return a copy/);
  });

  test('the default output folder is memory-backed where the machine has one, and /v1/endpoints says where', async () => {
    const root = pickOutputRoot();
    const described = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as { endpoints: Array<{ name: string; output_dir?: { path: string; memory_backed: boolean; default: boolean } }> };
    const dir = described.endpoints.find((e) => e.name === 'defaults')!.output_dir!;
    assert.equal(dir.default, true);
    assert.ok(dir.path.startsWith(path.join(root.path, 'switchyard') + path.sep), dir.path);
    // Independently of the code under test: /dev/shm, where /proc/mounts lists it as tmpfs, is the default.
    const shmIsTmpfs = existsSync('/proc/mounts') && readFileSync('/proc/mounts', 'utf8').split('\n').some((line) => /^\S+ \/dev\/shm tmpfs /.test(line));
    if (shmIsTmpfs) assert.equal(root.path, '/dev/shm');
    assert.equal(dir.memory_backed, shmIsTmpfs || isMemoryBacked(root.path));
    const explicit = described.endpoints.find((e) => e.name === 'kept')!.output_dir!;
    assert.deepEqual(explicit, { path: keptDir, memory_backed: isMemoryBacked(keptDir), default: false });
    // The path-returning predictor writes there, and that file is what is served.
    const answer = await post(`${gw.url}/inference/defaults`, picture, { accept: 'image/png' });
    assert.ok(answer.bytes.equals(expectedPng));
    assert.equal(filesIn(dir.path).length, 1);
    rmSync(dir.path, { recursive: true, force: true });
  });

  test('without that Accept the value goes as it is: a base64 string in JSON, bytes as application/octet-stream', async () => {
    const json = await post(`${gw.url}/inference/image`, picture);
    assert.equal(json.status, 200);
    assert.equal(json.headers.get('content-type'), 'application/json');
    assert.ok(Buffer.from(JSON.parse(json.bytes.toString('utf8')) as string, 'base64').equals(expectedPng));
    assert.deepEqual(filesIn(cleanDir), [], 'no file written');

    const bytes = await post(`${gw.url}/inference/b`, { action: 'bytes', size: 1000 });
    assert.equal(bytes.headers.get('content-type'), 'application/octet-stream');
    assert.ok(bytes.bytes.equals(pattern(1000)));
  });
});
