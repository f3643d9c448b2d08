/**
 * The ceiling of this stack: uWebSockets.js answering the echo on its own event loop. It reads the
 * body, parses the JSON and answers JSON, with nothing else (no routing table, no workers, no
 * metrics). On WebSocket it answers `{"id","input"}` with `{"id","output"}`.
 *
 * A baseline is deliberately standalone (it imports uWebSockets.js itself rather than through
 * native/): it must not change when the gateway does.
 *
 * Usage: node dist/bench/baselines/raw-uws.js [port]   (0 or none: any free port)
 */
import uWS from 'uWebSockets.js';

const port = Number(process.argv[2] ?? 0);
const JSON_TYPE = 'application/json';

const app = uWS.App();

app.get('/readyz', (res) => {
  res.end('ready');
});

app.post('/*', (res) => {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  let chunks: Buffer[] | undefined;
  res.onData((chunk, isLast) => {
    if (!isLast) {
      // The ArrayBuffer is detached once this callback returns: keep a copy.
      (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
      return;
    }
    if (aborted) return;
    const body = chunks ? Buffer.concat([...chunks, Buffer.from(chunk)]) : Buffer.from(chunk);
    let answer: string;
    try {
      answer = JSON.stringify(JSON.parse(body.toString('utf8')));
    } catch {
      res.cork(() => res.writeStatus('400 Bad Request').writeHeader('content-type', JSON_TYPE).end('{"error":{"code":"SY_BAD_REQUEST","message":"invalid JSON"}}'));
      return;
    }
    res.cork(() => res.writeHeader('content-type', JSON_TYPE).end(answer));
  });
});

app.ws('/*', {
  maxPayloadLength: 16 * 1024 * 1024,
  message: (ws, message) => {
    let request: { id?: unknown; input?: unknown };
    try {
      request = JSON.parse(Buffer.from(message).toString('utf8')) as typeof request;
    } catch {
      ws.send('{"error":{"code":"SY_BAD_REQUEST","message":"invalid JSON"}}');
      return;
    }
    ws.send(JSON.stringify({ id: request.id, output: request.input }));
  },
});

// Without a catch-all, uWS closes the connection of a request that matches no route.
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').writeHeader('content-type', JSON_TYPE).end('{"error":{"code":"SY_NOT_FOUND","message":"no such route"}}');
});

app.listen('127.0.0.1', port, (listenSocket) => {
  if (!listenSocket) {
    console.error(`raw-uws: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening on http://127.0.0.1:${uWS.us_socket_local_port(listenSocket)}`);
});

process.on('SIGTERM', () => process.exit(0));
