/**
 * The floor of any load generator written on Node's public socket API: `connections` kept-alive
 * sockets, each writes one prebuilt POST and, for every answer it reads, the next one. It parses
 * nothing (it counts `HTTP/1.1 200` in what it reads), times nothing and keeps no histogram, so its
 * CPU per request is what node, V8 and libuv cost around one socket read and one write: no
 * generator on net.Socket can do less (bench/generators.ts sets it beside wrk).
 *
 * Usage: node dist/bench/baselines/node-floor-client.js <url> <connections> <seconds>
 * Prints {"requests": n, "seconds": s}: answers counted after a one-second warm-up.
 */
import { connect, type Socket } from 'node:net';

const [urlArg, connectionsArg, secondsArg] = process.argv.slice(2);
const url = new URL(urlArg ?? 'http://127.0.0.1:8080/inference/echo');
const connections = Number(connectionsArg ?? 50);
const seconds = Number(secondsArg ?? 5);
const body = '{"text":"hello"}';
const request = Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
const OK = Buffer.from('HTTP/1.1 200');

let counting = false;
let answered = 0;
const sockets: Socket[] = [];
for (let i = 0; i < connections; i++) {
  const socket = connect(Number(url.port), url.hostname, () => socket.write(request));
  socket.setNoDelay(true);
  socket.on('data', (data: Buffer) => {
    let n = 0;
    for (let at = data.indexOf(OK); at >= 0; at = data.indexOf(OK, at + OK.length)) n++;
    if (counting) answered += n;
    for (let k = 0; k < n; k++) socket.write(request);
  });
  socket.on('error', (err) => {
    process.stderr.write(`node-floor-client: ${err.message}\n`);
    process.exit(1);
  });
  sockets.push(socket);
}
await new Promise((resolve) => setTimeout(resolve, 1000));
counting = true;
const started = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const elapsed = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ requests: answered, seconds: elapsed }) + '\n');
for (const socket of sockets) socket.destroy();
