/**
 * What the pinned uWebSockets.js build does with HTTP/1.1 that the gateway never sees, on a bare
 * uWS app: the limits the README ("HTTP/1.1 at the door") documents and the nginx settings cover.
 * A failure here means the library changed: revisit that section and the workarounds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadUws, type us_listen_socket } from '../../native/uws.js';
import { exchange, parseResponses } from '../helpers/raw-http.js';

describe('uWebSockets.js HTTP/1.1 limits (a bare app)', () => {
  const { uws } = loadUws();
  let listenSocket: us_listen_socket | undefined;
  let port = 0;

  before(async () => {
    const app = uws.App();
    // Answers after a turn of the event loop, as every inference answer does.
    app.post('/*', (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      res.onData((_chunk, last) => {
        if (last) setImmediate(() => !aborted && res.cork(() => res.end('ok')));
      });
    });
    app.get('/stream', (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      res.cork(() => res.write('first'));
      setTimeout(() => !aborted && res.cork(() => res.end('second')), 300);
    });
    app.any('/*', (res) => {
      res.end('any');
    });
    await new Promise<void>((resolve) =>
      app.listen('127.0.0.1', 0, (socket) => {
        listenSocket = socket || undefined;
        port = uws.us_socket_local_port(socket as us_listen_socket);
        resolve();
      }),
    );
  });
  after(() => listenSocket && uws.us_listen_socket_close(listenSocket));

  const post = 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}';

  test('a request pipelined behind an answer that is not out yet closes the connection, losing both', async () => {
    const one = await exchange(port, post, { done: (b) => parseResponses(b).length === 1 });
    assert.equal(parseResponses(one.bytes).length, 1, 'one request alone is answered');
    const two = await exchange(port, post + post);
    assert.ok(two.closed);
    assert.equal(two.bytes.length, 0);
  });

  test('HTTP/1.0, an HTTP/2 preface and 49 header lines get no answer', async () => {
    // With Host, 49 header lines.
    const headers = Array.from({ length: 48 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const got = await Promise.all(
      ['GET / HTTP/1.0\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', `GET / HTTP/1.1\r\nHost: t\r\n${headers}\r\n`].map((wire) => exchange(port, wire, { waitMs: 1500 })),
    );
    for (const g of got) assert.equal(g.bytes.length, 0);
    const fewer = await exchange(port, `GET / HTTP/1.1\r\nHost: t\r\n${headers.slice(headers.indexOf('\n') + 1)}\r\n`, { done: (b) => parseResponses(b).length === 1 });
    assert.equal(parseResponses(fewer.bytes)[0]?.body.toString(), 'any', '48 header lines are fine');
  });

  test('a chunk extension in a request body gets no answer', async () => {
    const got = await exchange(port, 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b\r\n{}\r\n0\r\n\r\n', { waitMs: 1500 });
    assert.equal(got.bytes.length, 0);
    const plain = await exchange(port, 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n', { done: (b) => parseResponses(b).length === 1 });
    assert.equal(parseResponses(plain.bytes)[0]?.body.toString(), 'ok', 'without the extension it is answered');
  });

  test("a chunk's closing CRLF leaves only with the next write", async () => {
    const got = await exchange(port, 'GET /stream HTTP/1.1\r\nHost: t\r\n\r\n', { done: (b) => parseResponses(b).length === 1 });
    const first = got.reads.find((r) => r.includes('first'))!;
    assert.ok(first.toString().endsWith('first'), JSON.stringify(first.toString()));
    assert.ok(got.reads.some((r) => r.toString().startsWith('\r\n6\r\nsecond')));
  });
});
