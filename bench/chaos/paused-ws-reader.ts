/** A WebSocket client asks for 500 streams of 32 KB chunks and stops reading. */
import type net from 'node:net';
import { openEndpointSocket, type ChaosCase } from './case.js';

export const pausedWsReader: ChaosCase = {
  name: 'paused WebSocket reader, 500 streams',
  expected: 'requests past ws_max_in_flight refused, socket closed 1008; RSS +≤64 MB; others p99 ≤2× quiet',
  server: { stall_timeout_ms: 5000 },
  durationMs: 8000,
  async run({ url, endpoint, signal }) {
    const ws = await openEndpointSocket(url, endpoint);
    let closeCode = 0;
    const closed = new Promise<void>((resolve) => ws.on('close', (code) => ((closeCode = code), resolve())));
    let replies = 0;
    let busy = 0;
    ws.on('message', (data: Buffer) => {
      replies++;
      if (data.includes('SY_CONNECTION_BUSY')) busy++;
    });
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    for (let i = 0; i < 500; i++) ws.send(JSON.stringify({ id: i, stream: true, input: { chunks: 100_000, size: 32 * 1024 } }));
    socket.pause();
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    socket.resume();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 3000))]);
    ws.terminate();
    return `${closeCode ? `closed ${closeCode}` : 'still open'}; ${replies} replies read after resuming (${busy} SY_CONNECTION_BUSY)`;
  },
};
