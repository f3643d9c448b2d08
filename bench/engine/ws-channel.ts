/**
 * One WebSocket on a raw socket, the client side of RFC 6455 and no more: the upgrade (its
 * Sec-WebSocket-Accept checked), masked text frames out, unmasked frames in (fragments joined,
 * pings answered, close honoured). Several requests share a socket, each tagged with an id
 * (Switchyard's shape, docs/streaming.md): `{"id","chunk"}` is a chunk, `{"id","done"}` or
 * `{"id","result"}` ends it, `{"id","error":{code}}` fails it. No permessage-deflate.
 */
import { randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { WsTarget } from './plan.js';
import { openSocket, socketErrorKind, type Channel, type ChannelEvents, type RequestRecord } from './channel.js';
import { SocketWriter } from './socket-writer.js';

const MASKS = Buffer.alloc(4096);
let maskOffset = MASKS.length;

function nextMask(): Buffer {
  if (maskOffset === MASKS.length) {
    randomFillSync(MASKS);
    maskOffset = 0;
  }
  const mask = MASKS.subarray(maskOffset, maskOffset + 4);
  maskOffset += 4;
  return mask;
}

/** A masked client frame (FIN set) with the given opcode. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = nextMask();
  mask.copy(frame, headerLength);
  const start = headerLength + 4;
  for (let i = 0; i < length; i++) frame[start + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

let nextId = 0;

export class WsChannel implements Channel {
  listed = false;
  private readonly socket: Socket;
  private readonly writer: SocketWriter;
  private readonly inFlight = new Map<string, RequestRecord>();
  private readonly waiting: RequestRecord[] = [];
  private open = false;
  private connected = false;
  private dead = false;
  private errorCode: string | undefined;
  private pending: Buffer | undefined;
  private handshakeFailure: string | undefined;
  private fragments: Buffer[] = [];
  readonly opened: Promise<void>;
  private settleOpened!: () => void;

  constructor(
    private readonly target: WsTarget,
    private readonly events: ChannelEvents,
  ) {
    this.opened = new Promise((resolve) => (this.settleOpened = resolve));
    this.socket = openSocket(target.host, target.port, target.tls, (buffer, length) => this.receive(buffer.subarray(0, length)));
    this.writer = new SocketWriter(this.socket, !target.tls);
    this.socket.on('connect', () => {
      this.connected = true;
    });
    this.socket.on('secureConnect', () => {
      this.connected = true;
    });
    this.socket.write(target.handshake);
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.errorCode = err.code;
    });
    this.socket.on('close', () => this.closed());
  }

  get free(): number {
    return this.dead ? 0 : this.target.inFlightPerSocket - this.inFlight.size - this.waiting.length;
  }

  get oldestSent(): number {
    // Map order is sending order; requests waiting for the upgrade were due no later.
    const first = this.inFlight.values().next();
    return this.waiting.length > 0 ? this.waiting[0]!.dispatched : first.done ? 0 : first.value.dispatched;
  }

  get alive(): boolean {
    return !this.dead;
  }

  start(request: RequestRecord): void {
    if (!this.open) {
      this.waiting.push(request);
      return;
    }
    this.send(request);
  }

  expire(before: number, now: number): void {
    let expired = false;
    for (const [id, request] of this.inFlight) {
      if (request.dispatched >= before) continue;
      this.inFlight.delete(id);
      this.events.onFinish(this, request, 'timeout', now);
      expired = true;
    }
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const request = this.waiting[i]!;
      if (request.dispatched >= before) continue;
      this.waiting.splice(i, 1);
      this.events.onFinish(this, request, 'timeout', now);
      expired = true;
    }
    // A late answer to an expired id could be taken for a later request's; a fresh socket avoids it.
    if (expired) this.close();
  }

  close(): void {
    this.dead = true;
    this.socket.destroy();
  }

  private send(request: RequestRecord): void {
    const id = (nextId++).toString(36);
    request.id = id;
    this.inFlight.set(id, request);
    // Requests go out once the upgrade is answered, so the socket is connected.
    this.writer.write(clientFrame(1, Buffer.from(`{"id":"${id}"${this.target.messageTail}`)), true);
  }

  private receive(data: Buffer): void {
    let buffer = this.pending ? Buffer.concat([this.pending, data]) : data;
    this.pending = undefined;
    if (!this.open) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) {
        this.pending = Buffer.from(buffer);
        return;
      }
      const head = buffer.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (status !== 101) {
        this.handshakeFailure = String(status || 'protocol');
        this.close();
        return;
      }
      if (accept !== this.target.expectedAccept) {
        this.handshakeFailure = 'protocol';
        this.close();
        return;
      }
      this.open = true;
      this.settleOpened();
      buffer = buffer.subarray(end + 4);
      const waiting = this.waiting.splice(0);
      for (const request of waiting) this.send(request);
    }
    let offset = 0;
    while (buffer.length - offset >= 2) {
      const b0 = buffer[offset]!;
      const b1 = buffer[offset + 1]!;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (buffer.length - offset < 4) break;
        length = buffer.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (buffer.length - offset < 10) break;
        length = Number(buffer.readBigUInt64BE(offset + 2));
        header = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) header += 4;
      if (buffer.length - offset < header + length) break;
      let payload = buffer.subarray(offset + header, offset + header + length);
      if (masked) {
        const mask = buffer.subarray(offset + header - 4, offset + header);
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      }
      offset += header + length;
      this.frame(b0 & 0x0f, (b0 & 0x80) !== 0, payload);
      if (this.dead) return;
    }
    if (offset < buffer.length) this.pending = Buffer.from(buffer.subarray(offset));
  }

  private frame(opcode: number, fin: boolean, payload: Buffer): void {
    if (opcode === 9) {
      this.socket.write(clientFrame(10, payload));
      return;
    }
    if (opcode === 10) return;
    if (opcode === 8) {
      this.socket.end(clientFrame(8, payload.subarray(0, 2)));
      this.dead = true;
      return;
    }
    if (opcode === 1 || opcode === 2 || opcode === 0) {
      if (!fin) {
        this.fragments.push(Buffer.from(payload));
        return;
      }
      if (this.fragments.length > 0) {
        this.fragments.push(payload);
        payload = Buffer.concat(this.fragments);
        this.fragments = [];
      }
      this.message(payload);
    }
  }

  private message(payload: Buffer): void {
    let message: { id?: unknown; chunk?: unknown; error?: { code?: unknown } | null; done?: unknown };
    try {
      message = JSON.parse(payload.toString('utf8')) as typeof message;
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object' || message.id === undefined || message.id === null) return;
    const id = String(message.id);
    const request = this.inFlight.get(id);
    if (!request) return;
    const now = performance.now();
    request.bytes += payload.length;
    if (message.error !== undefined) {
      this.inFlight.delete(id);
      const code = message.error?.code;
      // An error after chunks is a stream cut short by its own error frame.
      this.events.onFinish(this, request, request.chunks > 0 ? 'error-frame' : typeof code === 'string' ? code : 'error', now);
      return;
    }
    if ('chunk' in message) {
      this.events.onChunk(this, request, now);
      return;
    }
    this.inFlight.delete(id);
    this.events.onFinish(this, request, 'ok', now);
  }

  private closed(): void {
    this.dead = true;
    this.settleOpened();
    const now = performance.now();
    const kind = this.handshakeFailure ?? (this.open ? 'closed' : socketErrorKind(this.errorCode, this.connected));
    const requests = [...this.inFlight.values(), ...this.waiting];
    this.inFlight.clear();
    this.waiting.length = 0;
    for (const request of requests) this.events.onFinish(this, request, request.chunks > 0 ? 'truncated' : kind, now);
    this.events.onClosed(this, !this.open);
  }
}
