/**
 * The time limits a request asks for in its headers, each only ever shortening the endpoint's:
 * `X-Request-Timeout-Ms` (the whole answer: a unary answer, or a stream's last chunk),
 * `X-Stream-First-Chunk-Ms` and `X-Stream-Idle-Ms` (docs/streaming.md).
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { EndpointConfig } from '../config/schema.js';
import { streamTimeoutsFor, type StreamTimeouts } from '../endpoints/stream-deadlines.js';

export interface RequestLimits {
  /** The request deadline: a unary answer, or a stream's start. */
  timeoutMs: number;
  stream: StreamTimeouts;
}

function milliseconds(value: string, header: string): number | undefined {
  if (value === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new SwitchyardError('SY_BAD_REQUEST', `${header} must be a positive number of milliseconds`);
  return n;
}

/** Where headers are read from: a uWS request (before any await: uWS frees it on return), or headers kept. */
export interface HeaderSource {
  getHeader(lowerCaseName: string): string;
}

/** Reads the limit headers. Throws SY_BAD_REQUEST. */
export function requestLimits(req: HeaderSource, config: EndpointConfig): RequestLimits {
  const total = milliseconds(req.getHeader('x-request-timeout-ms'), 'X-Request-Timeout-Ms');
  const firstChunkMs = milliseconds(req.getHeader('x-stream-first-chunk-ms'), 'X-Stream-First-Chunk-Ms');
  const idleMs = milliseconds(req.getHeader('x-stream-idle-ms'), 'X-Stream-Idle-Ms');
  return {
    timeoutMs: total === undefined ? config.timeout_ms : Math.min(total, config.timeout_ms),
    stream: streamTimeoutsFor(config, { firstChunkMs, idleMs, totalMs: total }),
  };
}
