/**
 * Client reconnection: a stream outlives its client's connection for a grace window, and a client
 * that comes back within it (SSE `Last-Event-ID`, `GET .../streams/{id}`, a WebSocket `resume`
 * message) gets every chunk after the last one it saw, then the stream goes on live.
 *
 * On endpoints with `stream_reconnect.grace_ms`, each call's sink is a `StreamRelay` in front of
 * the transport's sink. The relay keeps a bounded tail of recent chunks (`tail_bytes`) and knows
 * which transport sink holds the stream now, if any. When that connection goes away the relay
 * keeps the call running: the credit of the chunks the old connection never acknowledged goes
 * back, and no more comes until a client is attached again, so the generator pauses after at most
 * its credit of chunks, all held in the tail. A stream nobody reattaches to within the grace window
 * is cancelled; one that ended meanwhile is kept (tail and ending) for the same window.
 *
 * Credit stays exact across a reattach: chunks replayed to the new connection that the old one
 * had already acknowledged are marked as debt (`call.creditDebt`), so acknowledging them again
 * returns no credit.
 */
import { joinChunks, runLength, type ChunkRun } from '../../workers/protocol/chunk-run.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { Call, CallSink } from './call.js';
import { StreamTail } from './stream-tail.js';

export interface ReconnectSettings {
  readonly graceMs: number;
  readonly tailBytes: number;
}

/** What a relay needs from its endpoint. */
export interface RelayHost {
  ack(call: Call, n: number): void;
  cancel(call: Call): void;
}

export class StreamRelay implements CallSink {
  private readonly tail: StreamTail;
  /** The transport sink the stream is written to; undefined while no client is attached. */
  private target: CallSink | undefined;
  /** How the stream ended (and what predictStream returned), while its ending waits for a client to hear it. */
  private ending: { error: SwitchyardError | undefined; returned?: unknown } | undefined;
  /** Chunks that arrived while no client was attached. */
  private undelivered = 0;
  private timer: NodeJS.Timeout | undefined;
  call!: Call;

  constructor(
    target: CallSink,
    private readonly registry: StreamRegistry,
  ) {
    this.target = target;
    this.tail = new StreamTail(registry.settings.tailBytes);
  }

  get bytes(): number {
    return this.tail.bytes;
  }

  onResult(body: Uint8Array, contentType: string): void {
    this.target?.onResult(body, contentType);
  }

  onFile(path: string, size: number, contentType: string, remove: boolean, fd: number): void {
    this.target?.onFile(path, size, contentType, remove, fd);
  }

  onStreamStart(streamId: string): void {
    this.registry.add(streamId, this);
    this.target?.onStreamStart(streamId);
  }

  onChunks(run: ChunkRun): void {
    this.tail.pushRun(run);
    if (this.target) this.target.onChunks(run);
    else this.undelivered += runLength(run);
  }

  onStreamEnd(returned?: unknown): void {
    this.settle(undefined, returned);
  }

  onError(err: SwitchyardError): void {
    if (this.call.streamId === undefined) this.target?.onError(err);
    else this.settle(err);
  }

  private settle(error: SwitchyardError | undefined, returned?: unknown): void {
    this.ending = { error, returned };
    const target = this.target;
    if (!target) return;
    this.forget();
    if (error) target.onError(error);
    else target.onStreamEnd(returned);
  }

  /**
   * `sink`'s connection went away. True when the relay took care of it (the stream waits for a
   * reconnect, or another connection holds it now); false when the call should be cancelled.
   */
  detach(sink: CallSink): boolean {
    if (this.target !== sink) return true;
    if (this.call.streamId === undefined || this.ending) return false;
    this.release();
    this.timer = setTimeout(() => this.expire(), this.registry.settings.graceMs);
    this.timer.unref();
    return true;
  }

  /** Drops the current connection; the credit of the chunks it never acknowledged goes back. */
  private release(): void {
    this.target = undefined;
    const unacknowledged = this.call.unacked - this.undelivered;
    if (unacknowledged > 0) this.registry.host.ack(this.call, unacknowledged);
  }

  /**
   * `sink` continues the stream after chunk `lastSeq`: the chunks after it are replayed, then it
   * gets the rest live (or the ending, if the stream already ended). Another connection still
   * holding the stream loses it (its client reconnected elsewhere).
   */
  attach(sink: CallSink, lastSeq: number): void {
    const call = this.call;
    const replay = this.tail.after(lastSeq, call.seq);
    if (lastSeq > call.seq) throw new SwitchyardError('SY_BAD_REQUEST', `the stream has ${call.seq} chunks so far; there is no chunk ${lastSeq}`);
    if (!replay) throw new SwitchyardError('SY_STREAM_GONE', `the chunks after ${lastSeq} are no longer held (the tail keeps ${this.registry.settings.tailBytes} bytes)`);
    const previous = this.target;
    if (previous) {
      this.release();
      previous.onError(new SwitchyardError('SY_CANCELLED', 'the stream was resumed on another connection'));
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    // Replayed chunks the old connection had acknowledged already: acknowledging them again must not return credit.
    const debt = Math.max(0, replay.length - this.undelivered);
    call.creditDebt += debt;
    call.unacked += debt;
    this.undelivered = 0;
    this.target = sink;
    sink.onStreamStart(call.streamId!);
    // The replay goes as one run: one write (or one cork of messages) for all of it.
    if (replay.length > 0) sink.onChunks(joinChunks(replay.map((c) => c.data), replay[0]!.seq));
    if (this.ending) this.settle(this.ending.error, this.ending.returned);
  }

  private expire(): void {
    this.timer = undefined;
    this.forget();
    if (!this.ending) this.registry.host.cancel(this.call);
  }

  private forget(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.tail.clear();
    if (this.call.streamId !== undefined) this.registry.remove(this.call.streamId, this);
  }
}

/** The reconnectable streams of one endpoint, by stream id. */
export class StreamRegistry {
  private readonly relays = new Map<string, StreamRelay>();

  constructor(
    readonly settings: ReconnectSettings,
    readonly host: RelayHost,
  ) {}

  /** Puts a relay in front of the call's sink. */
  wrap(call: Call): void {
    const relay = new StreamRelay(call.sink, this);
    relay.call = call;
    call.sink = relay;
  }

  add(streamId: string, relay: StreamRelay): void {
    this.relays.set(streamId, relay);
  }

  remove(streamId: string, relay: StreamRelay): void {
    if (this.relays.get(streamId) === relay) this.relays.delete(streamId);
  }

  /** The relay of a live (or recently ended) stream, or SY_STREAM_GONE. */
  find(streamId: string): StreamRelay {
    const relay = this.relays.get(streamId);
    if (!relay) throw new SwitchyardError('SY_STREAM_GONE', 'no such stream: it never existed, ended, or its client did not come back within the grace window');
    return relay;
  }

  /** `sink`'s connection went away: true when the stream waits for a reconnect instead of being cancelled. */
  detach(call: Call, sink: CallSink): boolean {
    return call.sink instanceof StreamRelay && call.sink.detach(sink);
  }

  /** Bytes of the call's replay tail (0 for a call without one). */
  heldFor(call: Call): number {
    return call.sink instanceof StreamRelay ? call.sink.bytes : 0;
  }

  /** Streams held, and the bytes of their tails. */
  usage(): { streams: number; bytes: number } {
    let bytes = 0;
    for (const relay of this.relays.values()) bytes += relay.bytes;
    return { streams: this.relays.size, bytes };
  }
}
