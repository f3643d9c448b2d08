/** A WebSocket client keeps asking for 1 MB results and never reads them. */
import type net from 'node:net';
import WebSocket from 'ws';
import { openEndpointSocket, type ChaosCase } from './case.js';

export const pausedWsUnary: ChaosCase = {
  name: 'paused WebSocket reader, 1 MB unary results',
  expected: 'refused past ws_max_buffered_bytes, socket closed 1008; RSS +≤64 MB; others p99 ≤2× quiet',
  server: { stall_timeout_ms: 5000 },
  durationMs: 8000,
  async run({ url, endpoint, signal }) {
    const ws = await openEndpointSocket(url, endpoint);
    let closeCode = 0;
    ws.on('close', (code) => (closeCode = code));
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    socket.pause();
    let sent = 0;
    while (!signal.aborted && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ id: sent++, input: { action: 'bytes', size: 1024 * 1024 } }));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    socket.resume();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    ws.terminate();
    return `${sent} requests sent; ${closeCode ? `closed ${closeCode}` : 'still open'}`;
  },
};
