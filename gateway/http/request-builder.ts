/**
 * From a transport's request to a Call: one place for what HTTP and WebSocket requests share (the
 * request id, the regions to prefer, the headers a predictor sees, the deadline), so the two
 * transports cannot drift apart. The transports read their own framing (body or message,
 * negotiation, limits) and hand the result here.
 */
import { performance } from 'node:perf_hooks';
import type { HttpRequest } from '../../native/uws.js';
import type { RequestEnvelope, ResponseEncoding } from '../../workers/protocol/envelopes.js';
import { Call, type CallSink } from '../endpoints/call.js';
import type { StreamTimeouts } from '../endpoints/stream-deadlines.js';

/** What the client sent: raw bytes to decode in the replica (HTTP), or an already parsed input (a WebSocket message). */
export type RequestPayload = (Required<Pick<RequestEnvelope, 'body' | 'bodyType'>> & Pick<RequestEnvelope, 'stream'>) | (Required<Pick<RequestEnvelope, 'input' | 'stream'>> & Pick<RequestEnvelope, 'op'>);

/** Read from the HTTP request (or the WebSocket upgrade) before any await: uWS frees `req` on return. */
export interface RequestOrigin {
  /** Handed to the predictor: credentials and the WebSocket handshake's own headers left out. */
  headers: Record<string, string>;
  /** Regions to prefer, in order: the client's (`X-Switchyard-Region`), then the gateway's. */
  regions: readonly string[];
}

export interface RequestParts {
  payload: RequestPayload;
  encoding: ResponseEncoding;
  fileType: string | undefined;
  timeoutMs: number;
  streamTimeouts: StreamTimeouts;
  origin: RequestOrigin;
}

/** A transport's sink for one request; it learns its Call to cancel and acknowledge it. */
export interface RequestSink extends CallSink {
  call: Call | undefined;
}

/** Gateway-wide, shared by both transports, so ids never collide in logs and replicas. */
let nextRequestId = 1;

export function requestOrigin(req: HttpRequest, gatewayRegion: string): RequestOrigin {
  const headers: Record<string, string> = {};
  req.forEach((key, value) => {
    if (key !== 'authorization' && !key.startsWith('sec-websocket-')) headers[key] = value;
  });
  const clientRegion = req.getHeader('x-switchyard-region');
  return { headers, regions: clientRegion && clientRegion !== gatewayRegion ? [clientRegion, gatewayRegion] : [gatewayRegion] };
}

export function buildCall(sink: RequestSink, parts: RequestParts): Call {
  const call = new Call(
    {
      id: nextRequestId++,
      ...parts.payload,
      encoding: parts.encoding,
      fileType: parts.fileType,
      deadline: Date.now() + parts.timeoutMs,
      headers: parts.origin.headers,
    },
    sink,
    parts.origin.regions,
    performance.now(),
  );
  call.streamTimeouts = parts.streamTimeouts;
  sink.call = call;
  return call;
}
