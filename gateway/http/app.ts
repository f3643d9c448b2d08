/**
 * The uWS app: the inference route (HTTP here, WebSocket in websocket.ts), health, readiness,
 * metrics, the endpoint listing, and a fallback that answers 404/405 (without it uWS closes
 * unmatched connections with no answer).
 * Everything a handler needs from `req` is read before any await: uWS frees it on return.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '../../native/uws.js';
import { SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { EndpointKeys } from './auth.js';
import { readBody } from './body.js';
import type { ConnectionBudget } from './connection-budget.js';
import { HttpCall } from './http-call.js';
import { bodyTypeOf, negotiate } from './negotiate.js';
import { endpointFor } from './endpoint-for.js';
import { CONFLICTING_LENGTH_MESSAGE, hasConflictingLength } from './request-framing.js';
import { answerWithoutBody, writeError, writeJson, writeText } from './respond.js';
import { installWebSocket, type OpenWebSockets } from './websocket.js';
import { CorsPolicies, withCors } from './cors.js';
import { requestLimits, type RequestLimits } from './request-limits.js';
import { buildCall, requestOrigin } from './request-builder.js';
import { installEventSource } from './event-source.js';
import { installStreamResume } from './stream-resume-route.js';
import { installOpenInference } from './oip-v2.js';
import { installOpenAi } from './openai.js';
import type { CorsConfig } from '../config/schema.js';

export interface AppContext {
  endpoints: ReadonlyMap<string, Endpoint>;
  /** Per-connection limits and the stall clock (HTTP and WebSocket). */
  budget: ConnectionBudget;
  region: string;
  maxBodyBytes: number;
  isDraining(): boolean;
  readiness(): { ready: boolean; endpoints: Record<string, { ready: number; desired: number; error?: string }> };
  describe(): unknown;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The server's CORS policy (endpoints may have their own). */
  cors?: CorsConfig | undefined;
}

const KNOWN_ROUTES: Array<[RegExp, string]> = [
  [/^\/inference\/[^/]+$/, 'GET, POST'],
  [/^\/inference\/[^/]+\/streams\/[^/]+$/, 'GET'],
  [/^\/healthz$/, 'GET'],
  [/^\/v1\/(chat\/)?completions$/, 'POST'],
  [/^\/v1\/models(\/[^/]+)?$/, 'GET'],
  [/^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer$/, 'POST'],
  [/^\/v2(\/health\/(live|ready)|\/models\/[^/]+(\/versions\/[^/]+)?(\/ready)?)?$/, 'GET'],
  [/^\/readyz$/, 'GET'],
  [/^\/metrics$/, 'GET'],
  [/^\/v1\/endpoints$/, 'GET'],
];

/** Installs every route; what it returns closes the open WebSockets at shutdown. */
export function installRoutes(uwsApp: TemplatedApp, ctx: AppContext): OpenWebSockets {
  const app = withCors(uwsApp, new CorsPolicies(ctx.cors, [...ctx.endpoints].map(([name, ep]) => [name, ep.config.cors])));
  const keys = new EndpointKeys(ctx.endpoints);

  app.post('/inference/:endpoint', (res: HttpResponse, req: HttpRequest) => {
    if (hasConflictingLength(req)) return refuseAmbiguousLength(res);
    const name = req.getParameter(0) ?? '';
    const endpoint = endpointFor(res, name, ctx);
    if (!endpoint) return;
    const config = endpoint.config;
    let bodyType: 'json' | 'msgpack';
    let negotiated;
    let limits: RequestLimits;
    try {
      keys.get(name)!.check(req.getHeader('authorization'));
      bodyType = bodyTypeOf(req.getHeader('content-type'));
      negotiated = negotiate(req.getHeader('accept'), config.produces, bodyType);
      limits = requestLimits(req, config);
    } catch (err) {
      writeError(res, toSwitchyardError(err));
      return;
    }
    const limit = config.max_body_bytes ?? ctx.maxBodyBytes;
    const declared = Number(req.getHeader('content-length') || '0');
    if (declared > limit) {
      writeError(res, new SwitchyardError('SY_PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`));
      return;
    }
    const origin = requestOrigin(req, ctx.region);
    const range = req.getHeader('range');
    const sink = new HttpCall(res, endpoint, negotiated.sse ? 'sse' : negotiated.ndjson ? 'ndjson' : 'raw', range, ctx.budget.stalls);
    res.onAborted(() => sink.abort());
    readBody(
      res,
      limit,
      (body) => {
        if (sink.aborted) return;
        if (body.byteLength === 0 && !config.allow_empty_body) {
          const err = new SwitchyardError('SY_BAD_REQUEST', `the body is empty; endpoint "${name}" takes a JSON or msgpack body (allow_empty_body: true reads an empty one as {})`);
          res.cork(() => writeError(res, err));
          return;
        }
        endpoint.submit(
          buildCall(sink, {
            payload: { body, bodyType },
            encoding: negotiated.encoding,
            fileType: negotiated.fileType,
            timeoutMs: limits.timeoutMs,
            streamTimeouts: limits.stream,
            origin,
          }),
        );
      },
      (err) => {
        if (!sink.aborted) res.cork(() => writeError(res, err));
      },
      declared,
    );
  });

  installStreamResume(app, { endpoints: ctx.endpoints, isDraining: ctx.isDraining, keys, stalls: ctx.budget.stalls });

  installEventSource(app, { endpoints: ctx.endpoints, isDraining: ctx.isDraining, keys, region: ctx.region, maxBodyBytes: ctx.maxBodyBytes, stalls: ctx.budget.stalls });

  installOpenInference(app, { endpoints: ctx.endpoints, keys, region: ctx.region, maxBodyBytes: ctx.maxBodyBytes, isDraining: ctx.isDraining, ready: () => ctx.readiness().ready });

  installOpenAi(app, { endpoints: ctx.endpoints, keys, region: ctx.region, maxBodyBytes: ctx.maxBodyBytes, isDraining: ctx.isDraining, stalls: ctx.budget.stalls });

  // Our GET routes, and HEAD on them: the same answer without its body.
  const get = (pattern: string, handler: (res: HttpResponse) => void) => {
    app.get(pattern, (res, req) => (hasConflictingLength(req) ? refuseAmbiguousLength(res) : handler(res)));
    app.head(pattern, (res, req) => {
      answerWithoutBody(res);
      if (hasConflictingLength(req)) refuseAmbiguousLength(res);
      else handler(res);
    });
  };

  get('/healthz', (res) => writeJson(res, 200, { status: 'ok' }));

  get('/readyz', (res) => {
    const r = ctx.readiness();
    writeJson(res, r.ready && !ctx.isDraining() ? 200 : 503, { ready: r.ready && !ctx.isDraining(), endpoints: r.endpoints });
  });

  get('/v1/endpoints', (res) => writeJson(res, 200, ctx.describe()));

  get('/metrics', (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    ctx.metrics().then(
      ({ contentType, body }) => {
        if (!aborted) res.cork(() => writeText(res, 200, contentType, body));
      },
      (err: Error) => {
        if (!aborted) res.cork(() => writeError(res, new SwitchyardError('SY_INTERNAL', `metrics failed: ${err.message}`)));
      },
    );
  });

  const webSockets = installWebSocket(app, {
    endpoints: ctx.endpoints,
    keys,
    region: ctx.region,
    maxBodyBytes: ctx.maxBodyBytes,
    isDraining: ctx.isDraining,
    budget: ctx.budget,
  });

  // HEAD elsewhere: no inference runs for a HEAD, so 405 (or 404), without the body.
  app.head('/*', (res, req) => {
    answerWithoutBody(res);
    if (hasConflictingLength(req)) refuseAmbiguousLength(res);
    else answerUnrouted(res, req, 'HEAD');
  });

  app.any('/*', (res, req) => {
    if (hasConflictingLength(req)) refuseAmbiguousLength(res);
    else answerUnrouted(res, req, req.getCaseSensitiveMethod().toUpperCase());
  });
  return webSockets;
}

/** 405 with Allow on a known route, else 404. */
function answerUnrouted(res: HttpResponse, req: HttpRequest, method: string): void {
  const url = req.getUrl();
  const route = KNOWN_ROUTES.find(([pattern]) => pattern.test(url));
  if (route) {
    writeError(res, new SwitchyardError('SY_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url}; use ${route[1]}`), { allow: route[1] });
  } else {
    writeError(res, new SwitchyardError('SY_NOT_FOUND', `no route ${method} ${url}`));
  }
}

/**
 * 400 and close, answered one turn later. uWS goes on parsing what followed in the same read as
 * soon as the handler returns, and a second request there clears the close flag our answer set:
 * answered at once, a request smuggled behind this one was served and the connection kept. With
 * our answer still pending, uWS closes the connection rather than route a pipelined request (it
 * refuses async pipelining), so nothing behind an ambiguous length is ever read as a request; a
 * lone request gets its 400 and the close.
 */
function refuseAmbiguousLength(res: HttpResponse): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  setImmediate(() => {
    if (!aborted) res.cork(() => writeError(res, new SwitchyardError('SY_BAD_REQUEST', CONFLICTING_LENGTH_MESSAGE), undefined, true));
  });
}
