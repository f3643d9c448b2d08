/**
 * One HTTP/1.1 connection on a raw socket: the pre-serialised request written as it is, the answer
 * read by the minimal parser, one request at a time, reused while the server keeps it alive. A
 * server that closes after each answer costs a new connection per request, and that cost lands in
 * the latency of the request that needed it, as a sequential client would see it.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HttpTarget } from './plan.js';
import { ResponseParser } from './response-parser.js';
import { openSocket, socketErrorKind, type Channel, type ChannelEvents, type RequestRecord } from './channel.js';
import { SseReader } from './sse.js';
import { SocketWriter } from './socket-writer.js';

export class HttpChannel implements Channel {
  listed = false;
  private readonly socket: Socket;
  private readonly writer: SocketWriter;
  private readonly parser: ResponseParser;
  private current: RequestRecord | undefined;
  private status = 0;
  private connected = false;
  private dead = false;
  private errorCode: string | undefined;
  private readonly sse: SseReader | undefined;
  /** In chunked mode: the last chunk looked like an error line (`\n{"error":...}`). */
  private lastChunkWasError = false;
  /** Answers completed on this connection. */
  private served = 0;
  /** Body pieces matter (streams); otherwise the parser only counts body bytes. */
  private readonly streamed: boolean;
  readonly opened: Promise<void>;
  private settleOpened!: () => void;

  constructor(
    private readonly target: HttpTarget,
    private readonly events: ChannelEvents,
  ) {
    this.opened = new Promise((resolve) => (this.settleOpened = resolve));
    this.sse = target.stream === 'sse' ? new SseReader() : undefined;
    this.streamed = target.stream !== 'none';
    this.parser = new ResponseParser({
      onHead: (status) => {
        this.status = status;
      },
      onChunk: (data) => this.chunk(data),
      onComplete: () => this.complete(),
    });
    this.socket = openSocket(target.host, target.port, target.tls, (buffer, length) => this.receive(buffer, length));
    this.writer = new SocketWriter(this.socket, !target.tls);
    this.socket.on('connect', () => {
      this.connected = true;
      if (!target.tls) this.settleOpened();
    });
    this.socket.on('secureConnect', () => {
      this.connected = true;
      this.settleOpened();
    });
    // The server's FIN: this connection takes no new request (one already sent is answered or retried).
    this.socket.on('end', () => {
      this.dead = true;
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.errorCode = err.code;
    });
    this.socket.on('close', () => this.closed());
  }

  get free(): number {
    return this.dead || this.current ? 0 : 1;
  }

  get oldestSent(): number {
    return this.current ? this.current.dispatched : 0;
  }

  get alive(): boolean {
    return !this.dead;
  }

  start(request: RequestRecord): void {
    this.current = request;
    this.status = 0;
    this.lastChunkWasError = false;
    this.sse?.reset();
    this.parser.begin(this.target.bodiless, this.streamed);
    // Direct to the TCP handle once connected (socket-writer.ts); before that the stream queues it.
    this.writer.write(this.target.request, this.connected);
  }

  expire(before: number, now: number): void {
    if (this.current && this.current.dispatched < before) {
      const request = this.current;
      this.current = undefined;
      this.events.onFinish(this, request, 'timeout', now);
      this.close();
    }
  }

  close(): void {
    this.dead = true;
    this.socket.destroy();
  }

  private receive(buffer: Buffer, length: number): void {
    if (!this.current) return;
    const error = this.parser.execute(buffer, 0, length);
    if (error !== undefined) this.fail('protocol');
  }

  private chunk(data: Buffer): void {
    const request = this.current!;
    if (this.status < 200 || this.status >= 300) return;
    if (this.sse) {
      const now = performance.now();
      this.sse.feed(data, request, () => this.events.onChunk(this, request, now));
      return;
    }
    this.lastChunkWasError = data.length > 10 && data[0] === 10 && data[1] === 123 && data.includes('"error"');
    if (this.lastChunkWasError) return;
    this.events.onChunk(this, request, performance.now());
  }

  private complete(): void {
    const request = this.current!;
    this.current = undefined;
    this.served++;
    request.bytes = this.parser.bytes;
    const now = performance.now();
    if (!this.parser.reusable) this.close();
    const ok = this.status >= 200 && this.status < 300;
    const outcome = !ok ? String(this.status) : request.errorFrame ? 'error-frame' : 'ok';
    this.events.onFinish(this, request, outcome, now);
  }

  private fail(kind: string): void {
    const request = this.current;
    this.current = undefined;
    this.close();
    if (request) {
      request.bytes = this.parser.bytes;
      this.events.onFinish(this, request, kind, performance.now());
    }
  }

  private closed(): void {
    this.dead = true;
    this.settleOpened();
    const request = this.current;
    if (request) {
      const state = this.parser.close();
      // A body that ends with the connection is complete (parser.close called complete()).
      if (this.current) {
        this.current = undefined;
        request.bytes = this.parser.bytes;
        const now = performance.now();
        if (state === 'truncated') {
          const streamed = this.target.stream !== 'none' && this.status >= 200 && this.status < 300;
          this.events.onFinish(this, request, streamed && (this.lastChunkWasError || request.errorFrame) ? 'error-frame' : this.status >= 300 || this.status < 200 ? String(this.status) : 'truncated', now);
        } else if (state === 'empty' && this.served > 0) {
          this.events.onFinish(this, request, 'stale', now);
        } else {
          this.events.onFinish(this, request, socketErrorKind(this.errorCode, this.connected), now);
        }
      }
    }
    this.events.onClosed(this, !this.connected);
  }
}
