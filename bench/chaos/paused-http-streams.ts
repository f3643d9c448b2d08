/** 32 HTTP clients start a stream each on an endpoint with max_concurrency 32 and stop reading. */
import net from 'node:net';
import type { ChaosCase } from './case.js';

export const pausedHttpStreams: ChaosCase = {
  name: '32 paused HTTP streams, max_concurrency 32',
  expected: 'paused streams park (hold no slot); others all 200, p99 ≤2× quiet; cancelled after stall_timeout_ms',
  endpoint: { max_concurrency: 32 },
  server: { stall_timeout_ms: 5000 },
  durationMs: 8000,
  async run({ port, endpoint, signal }) {
    const body = JSON.stringify({ stream: true, chunks: 1_000_000, size: 64 * 1024 });
    const sockets: net.Socket[] = [];
    let closedByServer = 0;
    for (let i = 0; i < 32; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('close', () => closedByServer++);
      socket.write(`POST /inference/${endpoint} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      socket.pause();
      sockets.push(socket);
    }
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    for (const s of sockets) s.resume();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const count = closedByServer;
    for (const s of sockets) s.destroy();
    return `${count} of 32 connections closed by the gateway (stalled)`;
  },
};
