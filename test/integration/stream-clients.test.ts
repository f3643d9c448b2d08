/**
 * Streams as standard clients read them, chunk by chunk. The predictor runs in lockstep: after
 * chunk i it waits until the client has written `<mark>.got-i`, which the client does once it has
 * chunk i. A client that only gets a chunk when the next one is sent never does, and the stream
 * stalls until the wait limit: no timing is asserted.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { NGINX_MISSING, startNginx, type Nginx } from '../helpers/nginx.js';
import { completeChunks, exchange, parseResponses } from '../helpers/raw-http.js';

const REQUESTS_MISSING = spawnSync('python3', ['-c', 'import requests']).status !== 0 && 'Python requests is not installed (Debian: apt-get install python3-requests)';

/** Runs Python with `requests`; the script prints one JSON value per line. */
async function python(script: string, args: string[]): Promise<{ code: number | null; lines: unknown[]; stderr: string }> {
  const child = spawn('python3', ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr };
}

/** iter_lines over a stream; writes got-i when "chunk i" arrives; prints lines, then how it ended. */
const REQUESTS_STREAM = `
import json, os, sys, requests
url, accept, body, out_dir, mark = sys.argv[1:6]
r = requests.post(url, data=body, headers={"content-type": "application/json", "accept": accept}, stream=True, timeout=(5, 20))
try:
    for line in r.iter_lines():
        text = line.decode()
        print(json.dumps(text), flush=True)
        if "chunk " in text:
            i = text.split("chunk ")[1].split()[0]
            open(os.path.join(out_dir, "%s.got-%s" % (mark, i)), "w").close()
    print(json.dumps({"ended": "complete"}), flush=True)
except Exception as e:
    print(json.dumps({"ended": type(e).__name__}), flush=True)
`;

describe('streams for chunk-by-chunk clients', () => {
  let gw: TestGateway;
  const outputDir = tempDir();
  const lockstep = (mark: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ stream: true, chunks: 4, lockstep: true, mark, ...extra });

  before(async () => {
    gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), output_dir: outputDir, timeout_ms: 60_000 } } });
  });
  after(() => gw.close());

  test('SSE: each event is a complete HTTP chunk on the wire before the next is produced', async () => {
    const body = lockstep('sock', { ms: 300 });
    const seen = new Set<string>();
    const got = await exchange(
      gw.gateway.port,
      `POST /inference/b HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      {
        waitMs: 20_000,
        done: (bytes) => {
          // Only complete chunks count: bytes still waiting for their CRLF are not delivered.
          const text = Buffer.concat(completeChunks(bytes)).toString();
          for (const [, i] of text.matchAll(/data: chunk (\d+)/g)) {
            if (!seen.has(i!)) writeFileSync(path.join(outputDir, `sock.got-${i}`), '');
            seen.add(i!);
          }
          return text.includes('event: end');
        },
      },
    );
    assert.deepEqual([...seen], ['0', '1', '2', '3'], `every chunk arrived complete: ${JSON.stringify(got.bytes.toString())}`);
    assert.equal(parseResponses(got.bytes)[0]?.status, 200);
  });

  test('Python requests reads SSE events as they are produced', { skip: REQUESTS_MISSING }, async () => {
    const { lines, stderr } = await python(REQUESTS_STREAM, [`${gw.url}/inference/b`, 'text/event-stream', lockstep('py-sse'), outputDir, 'py-sse']);
    const data = lines.filter((l) => typeof l === 'string' && l.startsWith('data: chunk'));
    assert.deepEqual(data, ['data: chunk 0', 'data: chunk 1', 'data: chunk 2', 'data: chunk 3'], stderr);
    assert.ok(lines.includes('event: end'));
    assert.deepEqual(lines.at(-1), { ended: 'complete' });
  });

  test('Python requests sees the error line of a failed chunked stream before the connection ends', { skip: REQUESTS_MISSING }, async () => {
    const body = JSON.stringify({ stream: true, chunks: 4, fail_at: 2, ms: 50 });
    const { lines, stderr } = await python(REQUESTS_STREAM, [`${gw.url}/inference/b`, '*/*', body, outputDir, 'py-fail']);
    const last = lines.at(-2);
    assert.equal(typeof last, 'string', stderr);
    assert.equal(JSON.parse(last as string).error.code, 'SY_PREDICTOR_ERROR');
    assert.deepEqual(lines.at(-1), { ended: 'ChunkedEncodingError' }, 'the body is not taken for complete');
  });

  describe('behind nginx with the README settings', { skip: NGINX_MISSING }, () => {
    let nginx: Nginx;
    before(async () => {
      nginx = await startNginx(gw.gateway.port);
    });
    after(() => nginx?.close());

    test('Python requests reads raw chunks as they are produced', { skip: REQUESTS_MISSING }, async () => {
      const { lines, stderr } = await python(REQUESTS_STREAM, [`http://127.0.0.1:${nginx.port}/inference/b`, '*/*', lockstep('ngx-raw'), outputDir, 'ngx-raw']);
      assert.deepEqual(lines, ['chunk 0', 'chunk 1', 'chunk 2', 'chunk 3', { ended: 'complete' }], stderr);
    });

    test('pipelined requests and HTTP/1.0 are answered', async () => {
      const one = (v: number) => {
        const body = JSON.stringify({ value: v });
        return `POST /inference/b HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      };
      const got = await exchange(nginx.port, one(1) + one(2) + one(3), { done: (b) => parseResponses(b).length === 3 });
      assert.deepEqual(
        parseResponses(got.bytes).map((r) => JSON.parse(r.body.toString()).echo),
        [1, 2, 3],
      );
      const old = await exchange(nginx.port, 'GET /healthz HTTP/1.0\r\n\r\n');
      assert.deepEqual(JSON.parse(parseResponses(old.bytes)[0]!.body.toString()), { status: 'ok' });
    });
  });
});
