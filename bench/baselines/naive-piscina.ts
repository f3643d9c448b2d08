/**
 * "Naive uWS → piscina": one `piscina.run(body)` per request, the worker parses and stringifies.
 * No routing, metrics, validation, batching or transfer of buffers; default pool size. It shows
 * what a thread hop per request costs before any gateway logic is added.
 *
 * Usage: node dist/bench/baselines/naive-piscina.js [port]
 */
import uWS from 'uWebSockets.js';
import { Piscina } from 'piscina';

const port = Number(process.argv[2] ?? 0);
const pool = new Piscina({ filename: new URL('./echo-task.js', import.meta.url).href });

const app = uWS.App();

app.get('/readyz', (res) => {
  res.end('ready');
});

app.post('/*', (res) => {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const chunks: Buffer[] = [];
  res.onData((chunk, isLast) => {
    // The ArrayBuffer is detached once this callback returns: keep a copy.
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (!isLast) return;
    pool.run(Buffer.concat(chunks).toString('utf8')).then(
      (answer: string) => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', 'application/json').end(answer));
      },
      () => {
        if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end());
      },
    );
  });
});

app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});

app.listen('127.0.0.1', port, (listenSocket) => {
  if (!listenSocket) {
    console.error(`naive-piscina: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening on http://127.0.0.1:${uWS.us_socket_local_port(listenSocket)}`);
});

process.on('SIGTERM', () => {
  void pool.destroy().finally(() => process.exit(0));
});
