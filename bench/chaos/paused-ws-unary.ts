/** A WebSocket client keeps asking for 1 MB results and never reads them. */
import type net from 'node:net';
import WebSocket from 'ws';
import { openEndpointSocket, type ChaosCase } from './case.js';

export const pausedWsUnary: ChaosCase = {
  name: 'paused WebSocket reader, 1 MB unary results',
  expected: 'held past ws_max_buffered_bytes (budget + one answer in the gateway), refused past ws_max_in_flight, socket closed 1008; RSS +≤64 MB; others p99 ≤2× quiet',
  server: { stall_timeout_ms: 5000 },
  durationMs: 8000,
  async run({ url, endpoint, signal }) {
    const ws = await openEndpointSocket(url, endpoint);
    let closeCode = 0;
    ws.on('close', (code) => (closeCode = code));
    let answers = 0;
    let busy = 0;
    ws.on('message', (data: Buffer) => {
      // The head of a reply names its kind; a 1 MB answer is not searched whole.
      const head = data.subarray(0, 64).toString('latin1');
      if (head.includes('"result"')) answers++;
      else if (data.includes('SY_CONNECTION_BUSY')) busy++;
    });
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
    return `${sent} requests sent; ${closeCode ? `closed ${closeCode}` : 'still open'}; read after resuming: ${answers} answers, ${busy} SY_CONNECTION_BUSY`;
  },
};
