/**
 * WebSocket on /inference/:endpoint: one socket carries many requests at once, each tagged with an
 * id the client chose; unary answers, stream chunks, the end of a stream and errors come back
 * tagged with that id (shapes: ws-messages.ts, docs/streaming.md). A bad message is answered with
 * an error message; the socket stays open.
 *
 * Backpressure (ws-reply-queue.ts): replies leave through one ordered queue per socket, sent
 * corked once per turn and only while uWS buffers less than HIGH_WATER. Each chunk is its own
 * message; the chunks of a run (what the replica produced in one turn) are queued together and go
 * out in that turn's cork. A stream chunk's credit goes back to its replica once the chunk was
 * sent below that mark, in one acknowledgement per stream per flush, otherwise at `drain`. So a
 * slow reader pauses the generators feeding it, the queue holds at most each stream's credit of
 * chunks, and uWS never reaches maxBackpressure (past which it would drop messages). Closing the
 * socket cancels every request on it.
 *
 * Budget (connection-budget.ts, ws-pacer.ts): a socket has at most `ws_max_in_flight` requests
 * open; a request starts (goes to the endpoint) only while its socket's unread replies plus the
 * expected answers of its running unary requests fit `ws_max_buffered_bytes`, and is held here
 * until the client reads otherwise (or answered SY_DEADLINE_EXCEEDED when its timeout passes
 * first); a socket holding bytes its client has not taken for `stall_timeout_ms` is closed (1008)
 * and its requests cancelled. Streams a slow reader has paused hold no replica slot (the endpoint
 * parks them), so they cannot starve other clients meanwhile.
 */
import { close, readFile } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { TemplatedApp, WebSocket } from '../../native/uws.js';
import { responseTooLarge, SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import type { Call, CallSink } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { ApiKeys } from './auth.js';
import type { ChunkRun } from '../../workers/protocol/chunk-run.js';
import { admitRequest, CLOSE_POLICY_VIOLATION, ReplySizes, type ConnectionBudget } from './connection-budget.js';
import { RequestPacer } from './ws-pacer.js';
import { frameBytes, HIGH_WATER, ReplyQueue } from './ws-reply-queue.js';
import { endpointFor } from './endpoint-for.js';
import { webSocketOffer } from './websocket-auth.js';
import { streamTimeoutsFor } from '../endpoints/stream-deadlines.js';
import { writeError } from './respond.js';
import { buildCall, requestOrigin, type RequestOrigin } from './request-builder.js';
import { parseClientMessage, replyEncoder, type ClientId, type ReplyEncoder, type ReplyFrame } from './ws-messages.js';

/** uWS drops messages past this; the queue keeps sends below HIGH_WATER, so it is a backstop. */
const MAX_BACKPRESSURE = 4 * HIGH_WATER;
/** Seconds without traffic before uWS closes a socket; uWS pings idle clients before that. */
const IDLE_TIMEOUT_S = 120;

export interface WebSocketContext {
  endpoints: ReadonlyMap<string, Endpoint>;
  /** Bearer keys per endpoint, checked on the upgrade request. */
  keys: ReadonlyMap<string, ApiKeys>;
  region: string;
  maxBodyBytes: number;
  isDraining(): boolean;
  budget: ConnectionBudget;
}

interface SocketData {
  connection: WsConnection;
}


/** Ids compare as text: `1` and `"1"` name the same request. */
const keyOf = (id: ClientId): string => String(id);

/** One request on a socket, as the endpoint's sink. */
class WsCall implements CallSink {
  call!: Call;
  /** The stream's id until this socket's first chunk of it carried it. */
  private announce: string | undefined;

  constructor(
    private readonly connection: WsConnection,
    readonly key: string,
    readonly replies: ReplyEncoder,
    /** A unary request (not a stream): its answer comes whole, of a size known only then. */
    readonly unary: boolean,
  ) {}

  get deadline(): number {
    return this.call.deadline;
  }

  onResult(body: Uint8Array, contentType: string): void {
    this.connection.finish(this, this.replies.result(body, contentType));
  }

  onFile(path: string, size: number, contentType: string, remove: boolean, fd: number): void {
    void this.connection.sendFile(this, path, fd, size, contentType, remove);
  }

  onStreamStart(streamId: string): void {
    // Nothing to say yet: a stream's first message is its first chunk (or `done`), which names it.
    this.announce = streamId;
  }

  onChunks(run: ChunkRun): void {
    const stream = this.announce;
    this.announce = undefined;
    this.replies.chunks(run, stream, (frame) => this.connection.send(frame, this.call));
  }

  onStreamEnd(): void {
    this.connection.finish(this, this.replies.done());
  }

  onError(err: SwitchyardError): void {
    this.connection.finish(this, this.replies.error(err));
  }
}

/** What the gateway holds for its WebSocket clients right now (GET /metrics). */
export interface WebSocketLoad {
  /** Reply bytes queued here or in uWS that clients have not taken. */
  unreadBytes: number;
  /** Expected answer bytes of the unary requests running for them. */
  expectedBytes: number;
  /** Requests held until their client reads. */
  heldRequests: number;
}

class WsConnection {
  private ws: WebSocket<SocketData> | undefined;
  private open = true;
  /** When the client last took bytes (or the socket had none waiting): the stall clock. */
  lastProgressAt = 0;
  private lastBuffered = 0;
  private refusedInARow = 0;
  private readonly live = new Map<string, WsCall>();
  private readonly replies: ReplyQueue;
  private flushScheduled = false;
  private readonly pacer: RequestPacer<WsCall>;

  constructor(
    private readonly endpoint: Endpoint,
    /** The upgrade request's headers and regions, for every request on the socket. */
    private readonly origin: RequestOrigin,
    private readonly limitBytes: number,
    private readonly budget: ConnectionBudget,
    endpointSizes: ReplySizes,
  ) {
    this.replies = new ReplyQueue((call, n) => this.endpoint.ack(call, n));
    this.pacer = new RequestPacer<WsCall>(budget.maxBufferedBytes, {
      unreadBytes: () => this.bufferedBytes(),
      start: (request) => this.endpoint.submit(request.call),
      expire: (request, waitedMs) => {
        const reason = `the request waited ${waitedMs} ms in the gateway for this socket's client to read its earlier replies (server.ws_max_buffered_bytes is ${budget.maxBufferedBytes}) and never reached a replica`;
        this.finish(request, request.replies.error(new SwitchyardError('SY_DEADLINE_EXCEEDED', reason)));
      },
    }, endpointSizes);
  }

  attach(ws: WebSocket<SocketData>): void {
    this.ws = ws;
  }

  receive(message: ArrayBuffer, binary: boolean): void {
    const parsed = parseClientMessage(message, binary, this.limitBytes);
    if (parsed.kind === 'invalid') {
      this.send(replyEncoder(parsed.id, binary).error(parsed.error));
      return;
    }
    const key = keyOf(parsed.id);
    if (parsed.kind === 'cancel') {
      // Cancelling an id that already finished (or never was) is not an error: the two crossed.
      const request = this.live.get(key);
      if (!request) return;
      this.live.delete(key);
      if (!this.pacer.isHeld(request)) this.endpoint.cancel(request.call);
      this.pacer.withdraw(request);
      this.send(request.replies.error(new SwitchyardError('SY_CANCELLED', 'the request was cancelled')));
      return;
    }
    const replies = replyEncoder(parsed.id, binary);
    if (parsed.kind === 'resume') {
      this.resume(key, replies, parsed.stream, parsed.lastSeq);
      return;
    }
    const budget = this.budget;
    const admission = admitRequest({ inFlight: this.live.size, retainedBytes: this.replayBytes(), refusedInARow: this.refusedInARow }, budget);
    if (admission.verdict !== 'accept') {
      this.refusedInARow++;
      if (admission.verdict === 'close') this.shut(CLOSE_POLICY_VIOLATION, admission.reason);
      else this.send(replies.error(new SwitchyardError('SY_CONNECTION_BUSY', `${admission.reason}; this request was refused, the others go on`, { retryAfterS: 1 })));
      return;
    }
    this.refusedInARow = 0;
    if (this.live.has(key)) {
      this.send(replies.error(new SwitchyardError('SY_BAD_REQUEST', `id ${JSON.stringify(parsed.id)} is already in use on this socket; this message was refused, the request with that id goes on`)));
      return;
    }
    const config = this.endpoint.config;
    let fileType: string | undefined;
    if (parsed.accept !== undefined) {
      if (!config.produces.includes(parsed.accept)) {
        this.send(replies.error(new SwitchyardError('SY_NOT_ACCEPTABLE', `this endpoint cannot produce ${parsed.accept}; it offers ${['application/json', ...config.produces].join(', ')}`)));
        return;
      }
      fileType = parsed.accept;
    }
    const timeoutMs = Math.min(parsed.timeoutMs ?? config.timeout_ms, config.timeout_ms);
    const sink = new WsCall(this, key, replies, !parsed.stream);
    buildCall(sink, {
      payload: { input: parsed.input, stream: parsed.stream },
      encoding: binary ? 'msgpack' : 'json',
      fileType,
      timeoutMs,
      // A stream's `timeout_ms` bounds it whole, as X-Request-Timeout-Ms does over HTTP.
      streamTimeouts: streamTimeoutsFor(config, { totalMs: parsed.timeoutMs, firstChunkMs: parsed.firstChunkMs, idleMs: parsed.idleMs }),
      origin: this.origin,
    });
    this.live.set(key, sink);
    this.pacer.admit(sink);
  }

  /** This socket's share of the gateway's WebSocket load. */
  addLoad(load: WebSocketLoad): void {
    if (!this.open) return;
    load.unreadBytes += this.unsentBytes();
    load.expectedBytes += this.pacer.expectedBytes();
    load.heldRequests += this.pacer.heldCount;
  }

  /** `{"id", "resume": <stream>, "last_seq": n}`: the stream continues on this socket under this id, from chunk n + 1. */
  private resume(key: string, replies: ReplyEncoder, streamId: string, lastSeq: number): void {
    if (this.live.has(key)) {
      this.send(replies.error(new SwitchyardError('SY_BAD_REQUEST', `id ${key} is already in use on this socket; pick another id for the resume`)));
      return;
    }
    const sink = new WsCall(this, key, replies, false);
    try {
      const registry = this.endpoint.reconnect;
      if (!registry) throw new SwitchyardError('SY_STREAM_GONE', `endpoint "${this.endpoint.name}" keeps no stream for a reconnect (stream_reconnect.grace_ms is 0)`);
      const relay = registry.find(streamId);
      sink.call = relay.call;
      this.live.set(key, sink);
      relay.attach(sink, lastSeq);
    } catch (err) {
      if (this.live.get(key) === sink) this.live.delete(key);
      this.send(replies.error(toSwitchyardError(err)));
    }
  }

  /** The last message of a request: its id is free again. */
  finish(request: WsCall, frame: ReplyFrame): void {
    if (this.live.get(request.key) === request) this.live.delete(request.key);
    this.pacer.answered(request, frameBytes(frame));
    this.send(frame);
  }

  /** Over a WebSocket a file comes whole, in one message (HTTP streams it and serves ranges). The checked descriptor is read, never the name. */
  async sendFile(request: WsCall, path: string, fd: number, size: number, contentType: string, remove: boolean): Promise<void> {
    try {
      // Whole in memory, so bounded like any unary answer.
      const limit = this.endpoint.config.max_response_bytes;
      if (limit !== undefined && size > limit) {
        this.finish(request, request.replies.error(responseTooLarge(size, limit)));
        return;
      }
      const bytes = await new Promise<Buffer>((resolve, reject) => readFile(fd, (err, data) => (err ? reject(err) : resolve(data))));
      this.finish(request, request.replies.file(bytes, contentType));
    } catch (err) {
      this.finish(request, request.replies.error(new SwitchyardError('SY_INTERNAL', `the output file could not be read: ${toSwitchyardError(err).message}`)));
    } finally {
      close(fd, () => undefined);
      if (remove) await unlink(path).catch(() => undefined);
    }
  }

  /** Reply bytes the client has not taken: queued here and buffered in uWS. */
  bufferedBytes(): number {
    return this.unsentBytes() + this.replayBytes();
  }

  /** Reply bytes queued here or in uWS's buffer, not yet read by the client. */
  private unsentBytes(): number {
    return this.replies.bytes + (this.ws ? this.ws.getBufferedAmount() : 0);
  }

  /** Bytes held in the replay tails of this socket's streams (stream_reconnect): memory this client costs too. */
  private replayBytes(): number {
    const registry = this.endpoint.reconnect;
    if (!registry) return 0;
    let bytes = 0;
    for (const request of this.live.values()) bytes += registry.heldFor(request.call);
    return bytes;
  }

  send(frame: ReplyFrame, creditOf?: Call): void {
    if (!this.open) return;
    this.replies.push(frame, creditOf);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Frames of one replica batch arrive in one synchronous run: one cork for all of them.
      queueMicrotask(() => this.flush());
    }
  }

  /** Sends what the socket takes now; called after each turn's replies and on `drain`. */
  flush(): void {
    this.flushScheduled = false;
    const ws = this.ws;
    if (!this.open || !ws) return;
    const buffered = ws.getBufferedAmount();
    // The client took bytes since the last look (uWS's buffer shrank): that is progress.
    if (buffered < this.lastBuffered) this.lastProgressAt = this.budget.stalls.now();
    this.replies.sendInto(ws, buffered);
    this.watchStall(ws.getBufferedAmount());
    // Every answer, cancel and drain ends in a flush: the moment bytes may have left the budget.
    this.pacer.release();
  }

  /** Watched while bytes wait for the client; the clock starts when they begin to wait. */
  private watchStall(buffered: number): void {
    const stalls = this.budget.stalls;
    this.lastBuffered = buffered;
    if (buffered === 0 && this.replies.empty) {
      this.lastProgressAt = 0;
      stalls.unwatch(this);
      return;
    }
    if (this.lastProgressAt === 0) this.lastProgressAt = stalls.now();
    stalls.watch(this);
  }

  /** `drain`: uWS wrote some of its buffer to the socket. */
  drained(): void {
    this.lastProgressAt = this.budget.stalls.now();
    this.flush();
  }

  /** The client took nothing for the stall timeout: its requests are cancelled and the socket closed. */
  onStalled(): void {
    this.shut(CLOSE_POLICY_VIOLATION, `no reply bytes were read for ${this.budget.stalls.stallTimeoutMs} ms`);
  }

  /** Ends the socket with `code`; the close handler cancels its requests. */
  shut(code: number, reason: string): void {
    const ws = this.ws;
    if (!this.open || !ws) return;
    // Close reasons are limited to 123 bytes.
    ws.end(code, reason.slice(0, 120));
    this.closed();
  }

  /** The socket is gone: every request on it is cancelled (their generators stop in the worker). */
  closed(): void {
    if (!this.open) return;
    this.open = false;
    this.budget.stalls.unwatch(this);
    this.replies.clear();
    this.ws = undefined;
    const requests = [...this.live.values()].filter((request) => !this.pacer.isHeld(request));
    this.pacer.clear();
    this.live.clear();
    // Streams on endpoints with stream_reconnect wait for their client to resume them elsewhere.
    for (const request of requests) this.endpoint.leave(request.call, request);
  }
}

/** Close code for a server going away (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001;

/** The open sockets, so shutdown can close them with a code rather than let them drop. */
export interface OpenWebSockets {
  closeAll(code: number, reason: string): void;
  /** Summed over the open sockets. */
  load(): WebSocketLoad;
}

export function installWebSocket(app: TemplatedApp, ctx: WebSocketContext): OpenWebSockets {
  const open = new Set<WsConnection>();
  // Per endpoint, for sockets with no answer yet; weak, as endpoints come and go with deployments.
  const answerSizes = new WeakMap<Endpoint, ReplySizes>();
  let maxPayloadLength = ctx.maxBodyBytes;
  for (const endpoint of ctx.endpoints.values()) maxPayloadLength = Math.max(maxPayloadLength, endpoint.config.max_body_bytes ?? ctx.maxBodyBytes);

  app.ws<SocketData>('/inference/:endpoint', {
    // The largest endpoint limit; each message is then checked against its own endpoint's.
    maxPayloadLength,
    maxBackpressure: MAX_BACKPRESSURE,
    idleTimeout: IDLE_TIMEOUT_S,
    upgrade: (res, req, context) => {
      const name = req.getParameter(0) ?? '';
      const endpoint = endpointFor(res, name, ctx);
      if (!endpoint) return;
      let offer;
      try {
        // A header or a subprotocol token (browsers), never the URL: it would end up in access
        // logs and browser history.
        offer = webSocketOffer(req.getHeader('authorization'), req.getHeader('sec-websocket-protocol'));
        ctx.keys.get(name)?.check(offer.authorization);
      } catch (err) {
        writeError(res, toSwitchyardError(err));
        return;
      }
      const limit = endpoint.config.max_body_bytes ?? ctx.maxBodyBytes;
      let sizes = answerSizes.get(endpoint);
      if (!sizes) answerSizes.set(endpoint, (sizes = new ReplySizes()));
      const connection = new WsConnection(endpoint, requestOrigin(req, ctx.region), limit, ctx.budget, sizes);
      res.upgrade<SocketData>(
        { connection },
        req.getHeader('sec-websocket-key'),
        offer.protocol,
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      const { connection } = ws.getUserData();
      open.add(connection);
      connection.attach(ws);
    },
    message: (ws, message, isBinary) => ws.getUserData().connection.receive(message, isBinary),
    drain: (ws) => ws.getUserData().connection.drained(),
    close: (ws) => {
      const { connection } = ws.getUserData();
      open.delete(connection);
      connection.closed();
    },
  });
  return {
    closeAll(code, reason) {
      for (const connection of [...open]) connection.shut(code, reason);
      open.clear();
    },
    load() {
      const load: WebSocketLoad = { unreadBytes: 0, expectedBytes: 0, heldRequests: 0 };
      for (const connection of open) connection.addLoad(load);
      return load;
    },
  };
}
