/**
 * A client continues a stream over HTTP after its connection went away (endpoints with
 * `stream_reconnect.grace_ms`): `GET /inference/{endpoint}/streams/{id}` with `Last-Event-ID`
 * (what `EventSource` sends on its own when it reconnects: `<stream>:<seq>`, or a bare seq) or
 * `?last_seq=n`. The answer replays every chunk after that one, then goes on live, in the framing
 * `Accept` asks for: SSE, NDJSON, or raw chunks. `GET /inference/{endpoint}` with a
 * `Last-Event-ID` of one of its streams (an `EventSource` reconnecting) does the same.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '../../native/uws.js';
import { SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { ApiKeys } from './auth.js';
import { endpointFor, type EndpointDirectory } from './endpoint-for.js';
import { HttpCall } from './http-call.js';
import { writeError } from './respond.js';
import type { StallWatch } from './stall-watch.js';
import { parseSseEventId, type StreamFraming } from './stream-framing.js';

export interface StreamResumeContext extends EndpointDirectory {
  keys: ReadonlyMap<string, ApiKeys>;
  stalls: StallWatch;
}

/** The framing a resuming client asks for: the same names a stream request uses. */
function framingOf(accept: string): StreamFraming {
  const types = accept.split(',').map((part) => part.split(';', 1)[0]!.trim().toLowerCase());
  if (types.includes('text/event-stream')) return 'sse';
  if (types.includes('application/x-ndjson')) return 'ndjson';
  return 'raw';
}

/** The last chunk the client has, from `Last-Event-ID` or `?last_seq`; 0 (replay all that is held) without either. */
function lastSeqOf(lastEventId: string, query: string | undefined, streamId: string): number {
  if (lastEventId !== '') {
    const parsed = parseSseEventId(lastEventId);
    if (parsed) {
      if (parsed.streamId !== streamId) throw new SwitchyardError('SY_BAD_REQUEST', 'Last-Event-ID names another stream than the URL');
      return parsed.seq;
    }
    const seq = Number(lastEventId);
    if (Number.isSafeInteger(seq) && seq >= 0) return seq;
    throw new SwitchyardError('SY_BAD_REQUEST', 'Last-Event-ID must be "<stream>:<seq>" as sent in the SSE id, or a seq');
  }
  if (query === undefined || query === '') return 0;
  const seq = Number(query);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new SwitchyardError('SY_BAD_REQUEST', 'last_seq must be the seq of the last chunk received (0 or more)');
  return seq;
}

/**
 * Attaches `res` to stream `streamId` of `endpoint` after chunk `lastSeq`, or answers the error
 * (410 SY_STREAM_GONE for a stream the endpoint no longer holds). Call before any await.
 */
export function resumeOverHttp(res: HttpResponse, endpoint: Endpoint, streamId: string, lastSeq: number, framing: StreamFraming, stalls: StallWatch): void {
  const sink = new HttpCall(res, endpoint, framing, '', stalls);
  try {
    const registry = endpoint.reconnect;
    if (!registry) throw new SwitchyardError('SY_STREAM_GONE', `endpoint "${endpoint.name}" keeps no stream for a reconnect (stream_reconnect.grace_ms is 0)`);
    const relay = registry.find(streamId);
    res.onAborted(() => sink.abort());
    sink.call = relay.call;
    relay.attach(sink, lastSeq);
  } catch (err) {
    writeError(res, toSwitchyardError(err));
  }
}

/** A `Last-Event-ID` that names one of the endpoint's held streams: an EventSource coming back. */
export function reconnectingEventSource(req: HttpRequest, endpoint: Endpoint): { streamId: string; seq: number } | undefined {
  const parsed = parseSseEventId(req.getHeader('last-event-id'));
  return parsed && endpoint.reconnect ? parsed : undefined;
}

export function installStreamResume(app: TemplatedApp, ctx: StreamResumeContext): void {
  app.get('/inference/:endpoint/streams/:stream', (res: HttpResponse, req: HttpRequest) => {
    const name = req.getParameter(0) ?? '';
    const streamId = req.getParameter(1) ?? '';
    const endpoint = endpointFor(res, name, ctx);
    if (!endpoint) return;
    let framing: StreamFraming;
    let lastSeq: number;
    try {
      ctx.keys.get(name)?.check(req.getHeader('authorization'));
      framing = framingOf(req.getHeader('accept'));
      lastSeq = lastSeqOf(req.getHeader('last-event-id'), req.getQuery('last_seq'), streamId);
    } catch (err) {
      writeError(res, toSwitchyardError(err));
      return;
    }
    resumeOverHttp(res, endpoint, streamId, lastSeq, framing, ctx.stalls);
  });
}
