/**
 * What one load run is, as plain data that crosses into the worker threads: the target (with its
 * request bytes serialised once), how requests are paced, and what counts as a good answer.
 */
import type { Arrival, RateSegment } from './schedule.js';
import type { Slo } from './options.js';

/** How the body of a 2xx answer is read. */
export type StreamKind = 'none' | 'chunked' | 'sse';

export interface HttpTarget {
  transport: 'http';
  url: string;
  host: string;
  port: number;
  tls: boolean;
  /** The whole request, serialised once and written as it is for every request. */
  request: Uint8Array;
  /** HEAD: the answer has no body whatever its headers say. */
  bodiless: boolean;
  stream: StreamKind;
}

export interface WsTarget {
  transport: 'ws';
  url: string;
  host: string;
  port: number;
  tls: boolean;
  /** The upgrade request, serialised once. */
  handshake: Uint8Array;
  /** The Sec-WebSocket-Accept the server must answer. */
  expectedAccept: string;
  /** The request message minus its id: `{"id":<id>` + tail. */
  messageTail: string;
  stream: boolean;
  /** Requests in flight per socket, at most. */
  inFlightPerSocket: number;
}

export type Target = HttpTarget | WsTarget;

export type Pacing =
  | { kind: 'open'; segments: RateSegment[]; arrival: Arrival; seed: number; maxConnections: number }
  | { kind: 'closed'; connections: number; durationS: number };

/** Per-request thresholds: a request that meets all of them counts toward goodput. */
export interface SloThresholds {
  latencyMs?: number;
  firstChunkMs?: number;
}

export interface LoadPlan {
  target: Target;
  pacing: Pacing;
  /** A request unanswered this long after it was sent is a timeout. */
  timeoutMs: number;
  slo?: SloThresholds;
  /** The SLO the run is judged by (evaluated on the main thread). */
  sloSpec?: Slo;
  /** Wall-clock start (ms since the epoch), the same instant for every thread. */
  startAt: number;
}

export function planDurationS(pacing: Pacing): number {
  return pacing.kind === 'closed' ? pacing.durationS : pacing.segments.reduce((sum, s) => sum + s.durationS, 0);
}
