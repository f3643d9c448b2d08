/**
 * What the load driver sees of a connection, HTTP or WebSocket: a number of free request slots
 * (1 for HTTP/1.1 without pipelining, `--inflight` for a WebSocket), a way to start a request, and
 * callbacks for each chunk, each finished request and the connection's end.
 */
import { createRequire } from 'node:module';
import { connect as netConnect, isIP, type Socket } from 'node:net';

/** node:tls is loaded on the first TLS connection: a plain-HTTP run spends no start-up on it. */
let tlsModule: typeof import('node:tls') | undefined;
const load = createRequire(import.meta.url);

/** One request, from its intended send time to its outcome. Times are performance.now() ms. */
export interface RequestRecord {
  intended: number;
  dispatched: number;
  firstChunkAt: number;
  lastChunkAt: number;
  chunks: number;
  bytes: number;
  /** The stream carried an error frame (SSE `event: error`, a WebSocket error after chunks, an error line). */
  errorFrame: boolean;
  /** The answer says the stream is over (SSE `event: end` / `[DONE]`). */
  ended: boolean;
  /** Sent once more on a fresh connection after a kept-alive one was closed under it. */
  retried: boolean;
  /** Only for WebSocket requests: their id on the socket ('' otherwise). Every field is always present: one object shape. */
  id: string;
}

/** 'ok' or an error kind: an HTTP status ('503'), 'connect', 'closed', 'reset', 'timeout', 'truncated', 'error-frame', 'protocol', or a WebSocket error code; 'stale' asks the driver to retry (a kept-alive connection the server had closed). */
export type Outcome = string;

export interface ChannelEvents {
  onChunk(channel: Channel, request: RequestRecord, now: number): void;
  onFinish(channel: Channel | undefined, request: RequestRecord, outcome: Outcome, now: number): void;
  /** The connection is gone; every request still on it has been finished already. */
  onClosed(channel: Channel, connectFailed: boolean): void;
}

export interface Channel {
  /** Requests it can take now. */
  readonly free: number;
  readonly alive: boolean;
  /** When its oldest request still unanswered was sent (performance.now() ms); 0 when it has none. */
  readonly oldestSent: number;
  /** Settles once the connection can carry requests (connected; a WebSocket upgraded) or is gone. */
  readonly opened: Promise<void>;
  /** Set by the driver: whether the channel sits in its list of channels with free slots. */
  listed: boolean;
  start(request: RequestRecord): void;
  /** Requests in flight that were sent before `before` are finished as timeouts (and the connection dropped). */
  expire(before: number, now: number): void;
  close(): void;
}

/**
 * One read buffer for every plain connection of this thread: with `onread`, node reads into it and
 * calls back without allocating a Buffer or going through the readable stream per read. Callers
 * get the buffer and the byte count, use the bytes during the callback and copy what they keep.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** Receives `buffer[0, length)`; the bytes are only valid during the call. */
export type OnData = (buffer: Buffer, length: number) => void;

export function openSocket(host: string, port: number, tls: boolean, onData: OnData): Socket {
  let socket: Socket;
  if (tls) {
    tlsModule ??= load('node:tls') as typeof import('node:tls');
    // SNI names a host, never an address (RFC 6066; node warns otherwise).
    socket = tlsModule.connect({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}), rejectUnauthorized: false });
    socket.on('data', (data: Buffer) => onData(data, data.length));
  } else {
    socket = netConnect({
      host,
      port,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number) => {
          onData(READ_BUFFER, n);
          return true;
        },
      },
    });
  }
  socket.setNoDelay(true);
  return socket;
}

/** The error kind of a socket failure, from node's error code. */
export function socketErrorKind(code: string | undefined, connected: boolean): Outcome {
  if (!connected) return 'connect';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  return 'closed';
}
