/**
 * `GET /inference/{endpoint}` with `Accept: text/event-stream`: the stream of a request whose
 * input is in the query string, as Server-Sent Events, so a browser's plain `EventSource` (which
 * can only GET, with no body and no headers of its own) can stream.
 *
 * The input is `?input=<URL-encoded JSON>` (`encodeURIComponent(JSON.stringify(input))`); without
 * it the input is `{}`. The request is always a stream. The JSON is parsed in the replica's thread,
 * as a POST body is. API keys are read from `Authorization` only: a key in a URL ends up in logs
 * and histories, so an endpoint with keys streams to browsers through `fetch` (which can set the
 * header) or a WebSocket (websocket-auth.ts).
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '../../native/uws.js';
import { SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import type { ApiKeys } from './auth.js';
import { endpointFor, type EndpointDirectory } from './endpoint-for.js';
import { HttpCall } from './http-call.js';
import type { StallWatch } from './stall-watch.js';
import { buildCall, requestOrigin } from './request-builder.js';
import { requestLimits } from './request-limits.js';
import { reconnectingEventSource, resumeOverHttp } from './stream-resume-route.js';
import { writeError } from './respond.js';

export interface EventSourceContext extends EndpointDirectory {
  keys: ReadonlyMap<string, ApiKeys>;
  region: string;
  maxBodyBytes: number;
  /** Finds streams whose client stopped reading (stall-watch.ts). */
  stalls: StallWatch;
}

/** Whether an Accept header names `text/event-stream` (EventSource sends exactly that). */
function acceptsEventStream(accept: string): boolean {
  return accept.split(',').some((part) => part.split(';', 1)[0]!.trim().toLowerCase() === 'text/event-stream');
}

export function installEventSource(app: TemplatedApp, ctx: EventSourceContext): void {
  app.get('/inference/:endpoint', (res: HttpResponse, req: HttpRequest) => {
    // A WebSocket upgrade on the same path belongs to the WebSocket route.
    if (req.getHeader('upgrade') !== '') {
      req.setYield(true);
      return;
    }
    const name = req.getParameter(0) ?? '';
    const endpoint = endpointFor(res, name, ctx);
    if (!endpoint) return;
    const config = endpoint.config;
    let limits;
    let input: string;
    try {
      ctx.keys.get(name)?.check(req.getHeader('authorization'));
      if (!acceptsEventStream(req.getHeader('accept'))) {
        throw new SwitchyardError(
          'SY_NOT_ACCEPTABLE',
          'GET /inference/{endpoint} answers only as Server-Sent Events: send "Accept: text/event-stream" (EventSource does), or POST the input',
        );
      }
      limits = requestLimits(req, config);
      input = req.getQuery('input') ?? '';
    } catch (err) {
      writeError(res, toSwitchyardError(err));
      return;
    }
    const limit = config.max_body_bytes ?? ctx.maxBodyBytes;
    const body = Buffer.from(input === '' ? '{}' : input);
    if (body.byteLength > limit) {
      writeError(res, new SwitchyardError('SY_PAYLOAD_TOO_LARGE', `the input is larger than ${limit} bytes`));
      return;
    }
    // An EventSource reconnecting sends the id of the last event it got: continue that stream.
    const back = reconnectingEventSource(req, endpoint);
    if (back) {
      resumeOverHttp(res, endpoint, back.streamId, back.seq, 'sse', ctx.stalls);
      return;
    }
    const sink = new HttpCall(res, endpoint, 'sse', '', ctx.stalls);
    res.onAborted(() => sink.abort());
    endpoint.submit(
      buildCall(sink, {
        payload: { body, bodyType: 'json', stream: true },
        encoding: 'json',
        fileType: undefined,
        timeoutMs: limits.timeoutMs,
        streamTimeouts: limits.stream,
        origin: requestOrigin(req, ctx.region),
      }),
    );
  });
}
