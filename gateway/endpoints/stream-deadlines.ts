/**
 * Time limits on streams: to the first chunk, between two chunks, and in total, each ending the
 * stream with its own code (docs/streaming.md). The request deadline (`timeout_ms`) bounds a
 * stream only until its replica starts it; from then on these limits apply.
 *
 * The idle clock only runs while the client has taken every chunk: a client that reads slowly
 * holds the generator back through credit, and that gap is the client's, not the predictor's.
 * The decision is a pure function of the stream's times; `StreamWatch` applies it on the
 * endpoint's deadline sweep.
 */
import type { StreamTimeoutsConfig } from '../config/schema.js';

export type StreamTimeoutCode = 'SY_STREAM_FIRST_CHUNK_TIMEOUT' | 'SY_STREAM_IDLE_TIMEOUT' | 'SY_STREAM_TOTAL_TIMEOUT';

/** One request's limits, in ms; absent means no limit. */
export interface StreamTimeouts {
  readonly firstChunkMs?: number | undefined;
  readonly idleMs?: number | undefined;
  readonly totalMs?: number | undefined;
}

/** What a request asked for (headers or WebSocket fields); each may only shorten the endpoint's. */
export interface StreamTimeoutRequest {
  firstChunkMs?: number | undefined;
  idleMs?: number | undefined;
  totalMs?: number | undefined;
}

const shorter = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

/** The limits of one request: the endpoint's, shortened by what the request asked for. */
export function streamTimeoutsFor(config: { timeout_ms: number; stream_timeouts: StreamTimeoutsConfig }, asked: StreamTimeoutRequest = {}): StreamTimeouts {
  const st = config.stream_timeouts;
  return {
    firstChunkMs: shorter(st.first_chunk_ms ?? config.timeout_ms, asked.firstChunkMs),
    idleMs: shorter(st.idle_ms, asked.idleMs),
    totalMs: shorter(st.total_ms, asked.totalMs),
  };
}

/** The times of one stream (performance.now() ms). */
export interface StreamClock {
  /** The request's arrival. */
  readonly startedAt: number;
  /** The latest chunk from the replica or credit taken by the client; undefined before the first chunk. */
  readonly lastProgressAt: number | undefined;
  /** Chunks handed to the client and not yet taken by it. */
  readonly unacked: number;
}

/** Which limit the stream is past at `now`, if any. */
export function streamExpired(limits: StreamTimeouts, clock: StreamClock, now: number): StreamTimeoutCode | undefined {
  if (limits.totalMs !== undefined && now - clock.startedAt >= limits.totalMs) return 'SY_STREAM_TOTAL_TIMEOUT';
  if (clock.lastProgressAt === undefined) {
    return limits.firstChunkMs !== undefined && now - clock.startedAt >= limits.firstChunkMs ? 'SY_STREAM_FIRST_CHUNK_TIMEOUT' : undefined;
  }
  if (limits.idleMs !== undefined && clock.unacked === 0 && now - clock.lastProgressAt >= limits.idleMs) return 'SY_STREAM_IDLE_TIMEOUT';
  return undefined;
}

export const STREAM_TIMEOUT_MESSAGES: Record<StreamTimeoutCode, (ms: number | undefined) => string> = {
  SY_STREAM_FIRST_CHUNK_TIMEOUT: (ms) => `the stream produced no chunk within ${ms} ms; the work was aborted`,
  SY_STREAM_IDLE_TIMEOUT: (ms) => `the stream produced no chunk for ${ms} ms; the work was aborted`,
  SY_STREAM_TOTAL_TIMEOUT: (ms) => `the stream did not end within ${ms} ms; the work was aborted`,
};

interface Watched extends StreamClock {
  limits: StreamTimeouts;
}

/** A stream under watch: what the endpoint keeps per stream with limits. */
export interface WatchedCall {
  streamTimeouts: StreamTimeouts | undefined;
  readonly startedAt: number;
  readonly unacked: number;
}

/** The streams of one endpoint that have limits; swept with the endpoint's deadlines. */
export class StreamWatch<C extends WatchedCall> {
  private readonly streams = new Map<C, { lastProgressAt: number | undefined }>();

  get size(): number {
    return this.streams.size;
  }

  /** A stream started; `fallback` gives the endpoint's limits when the transport set none. */
  started(call: C, fallback: () => StreamTimeouts): void {
    const limits = (call.streamTimeouts ??= fallback());
    if (limits.firstChunkMs === undefined && limits.idleMs === undefined && limits.totalMs === undefined) return;
    this.streams.set(call, { lastProgressAt: undefined });
  }

  /** A chunk arrived from the replica, or the client took one. */
  progress(call: C, now: number): void {
    const entry = this.streams.get(call);
    if (entry) entry.lastProgressAt = now;
  }

  ended(call: C): void {
    this.streams.delete(call);
  }

  /** Streams past a limit at `now` (removed from the watch), each with its code and limit. */
  expired(now: number): Array<{ call: C; code: StreamTimeoutCode; limitMs: number | undefined }> {
    const out: Array<{ call: C; code: StreamTimeoutCode; limitMs: number | undefined }> = [];
    for (const [call, entry] of this.streams) {
      const limits = call.streamTimeouts!;
      const watched: Watched = { limits, startedAt: call.startedAt, lastProgressAt: entry.lastProgressAt, unacked: call.unacked };
      const code = streamExpired(limits, watched, now);
      if (code === undefined) continue;
      this.streams.delete(call);
      const limitMs = code === 'SY_STREAM_TOTAL_TIMEOUT' ? limits.totalMs : code === 'SY_STREAM_IDLE_TIMEOUT' ? limits.idleMs : limits.firstChunkMs;
      out.push({ call, code, limitMs });
    }
    return out;
  }
}
