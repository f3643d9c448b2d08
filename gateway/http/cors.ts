/**
 * CORS, so browser apps on other origins can call the gateway. A policy comes from `server.cors`;
 * an endpoint's own `cors` replaces it on the routes that name the endpoint (`/inference/{e}`,
 * `/v2/models/{e}/...`). Without any policy the app is left exactly as it was.
 *
 * Applied by wrapping the app's handlers rather than every writer: the wrapper reads `Origin`
 * before the handler runs (uWS frees `req` on return) and makes the response write its CORS
 * headers right after its status line, whenever that comes. A stream's or a file's status is
 * written long after the handler returned, and errors come from many places; all of them carry
 * the headers without knowing about CORS.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocketBehavior } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { CorsConfig } from '../config/schema.js';
import { writeError } from './respond.js';

/** Request headers every policy allows: what our routes and the standard clients send. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Accept',
  'Range',
  'X-Request-Timeout-Ms',
  'X-Switchyard-Region',
  'X-Stream-First-Chunk-Ms',
  'X-Stream-Idle-Ms',
  'Last-Event-ID',
  'Inference-Header-Content-Length',
];

/** Response headers a page's script may read (besides the CORS-safelisted ones). */
export const CORS_EXPOSED_HEADERS = ['Retry-After', 'X-Switchyard-Stream', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'Inference-Header-Content-Length'];

const ALLOWED_METHODS = 'GET, POST, OPTIONS';

export class CorsPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;
  private readonly credentials: boolean;
  private readonly allowHeaders: string;
  private readonly maxAge: string;
  private static readonly EXPOSE = CORS_EXPOSED_HEADERS.join(', ');

  constructor(config: CorsConfig) {
    this.anyOrigin = config.allow_origins.includes('*');
    this.origins = new Set(config.allow_origins.map((o) => o.toLowerCase()));
    this.credentials = config.allow_credentials;
    this.allowHeaders = [...new Set([...CORS_ALLOWED_HEADERS, ...config.allow_headers])].join(', ');
    this.maxAge = String(config.max_age_secs);
  }

  allows(origin: string): boolean {
    return this.anyOrigin || this.origins.has(origin.toLowerCase());
  }

  /** Headers for an answer to a request from `origin` ('' when the request had none). */
  responseHeaders(origin: string): Array<[string, string]> {
    // Vary always: the same URL answers differently per origin, and caches must know it.
    if (origin === '' || !this.allows(origin)) return [['vary', 'Origin']];
    const headers: Array<[string, string]> = [
      ['access-control-allow-origin', this.anyOrigin && !this.credentials ? '*' : origin],
      ['vary', 'Origin'],
      ['access-control-expose-headers', CorsPolicy.EXPOSE],
    ];
    if (this.credentials) headers.push(['access-control-allow-credentials', 'true']);
    return headers;
  }

  /** Headers for a preflight from an allowed `origin`. */
  preflightHeaders(origin: string): Array<[string, string]> {
    const headers: Array<[string, string]> = [
      ['access-control-allow-origin', this.anyOrigin && !this.credentials ? '*' : origin],
      ['vary', 'Origin'],
      ['access-control-allow-methods', ALLOWED_METHODS],
      ['access-control-allow-headers', this.allowHeaders],
      ['access-control-max-age', this.maxAge],
    ];
    if (this.credentials) headers.push(['access-control-allow-credentials', 'true']);
    return headers;
  }
}

/** The policy for each route: the server's, or an endpoint's own. */
export class CorsPolicies {
  private readonly server: CorsPolicy | undefined;
  private readonly byEndpoint = new Map<string, CorsPolicy | undefined>();

  constructor(server: CorsConfig | undefined, endpoints: Iterable<[string, CorsConfig | undefined]>) {
    this.server = server ? new CorsPolicy(server) : undefined;
    let any = this.server !== undefined;
    for (const [name, config] of endpoints) {
      if (config) {
        this.byEndpoint.set(name, new CorsPolicy(config));
        any = true;
      }
    }
    this.enabled = any;
  }

  /** Whether any route has a policy (else the app is not wrapped at all). */
  readonly enabled: boolean;

  /** The policy of an endpoint's routes. */
  forEndpoint(name: string): CorsPolicy | undefined {
    return this.byEndpoint.get(name) ?? this.server;
  }

  /** The policy of a URL path: an endpoint's own for its routes, else the server's. */
  forUrl(url: string): CorsPolicy | undefined {
    const match = ENDPOINT_ROUTE.exec(url);
    return match ? this.forEndpoint(decodeURIComponent(match[1]!)) : this.server;
  }
}

/** Routes that name an endpoint in their path. */
const ENDPOINT_ROUTE = /^\/(?:inference|v2\/models)\/([^/]+)/;

/** Makes `res` write `headers` right after its status line, whenever that is written. */
function addHeadersAfterStatus(res: HttpResponse, headers: ReadonlyArray<[string, string]>): void {
  const writeStatus = res.writeStatus;
  res.writeStatus = (status) => {
    writeStatus.call(res, status);
    for (const [name, value] of headers) res.writeHeader(name, value);
    return res;
  };
}

type Handler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;

const WRAPPED_METHODS = new Set(['get', 'post', 'put', 'del', 'patch', 'head', 'any']);

/**
 * The app as route handlers see it: every handler's answer carries its route's CORS headers,
 * `OPTIONS` answers preflights, and WebSocket upgrades from an origin not on the list are refused.
 */
export function withCors(app: TemplatedApp, policies: CorsPolicies): TemplatedApp {
  if (!policies.enabled) return app;

  const wrap =
    (handler: Handler): Handler =>
    (res, req) => {
      const policy = policies.forUrl(req.getUrl());
      if (policy) addHeadersAfterStatus(res, policy.responseHeaders(req.getHeader('origin')));
      return handler(res, req);
    };

  app.options('/*', (res, req) => {
    const policy = policies.forUrl(req.getUrl());
    if (!policy) {
      // No CORS here: the fallback route answers (405 with Allow).
      req.setYield(true);
      return;
    }
    const origin = req.getHeader('origin');
    if (origin === '' || req.getHeader('access-control-request-method') === '') {
      addHeadersAfterStatus(res, policy.responseHeaders(origin));
      writeError(res, new SwitchyardError('SY_BAD_REQUEST', 'OPTIONS is answered only as a CORS preflight (Origin and Access-Control-Request-Method)'));
      return;
    }
    if (!policy.allows(origin)) {
      addHeadersAfterStatus(res, policy.responseHeaders(origin));
      writeError(res, new SwitchyardError('SY_ORIGIN_REFUSED', `origin ${origin} is not allowed here`));
      return;
    }
    res.writeStatus('204 No Content');
    for (const [name, value] of policy.preflightHeaders(origin)) res.writeHeader(name, value);
    res.endWithoutBody();
  });

  return new Proxy(app, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (typeof prop === 'string' && WRAPPED_METHODS.has(prop)) {
        return (pattern: string, handler: Handler) => {
          (value as (p: string, h: Handler) => unknown).call(target, pattern, wrap(handler));
          return receiver;
        };
      }
      if (prop === 'ws') {
        return (pattern: string, behavior: WebSocketBehavior<unknown>) => {
          const upgrade = behavior.upgrade;
          const checked: WebSocketBehavior<unknown> = {
            ...behavior,
            upgrade: (res, req, context) => {
              const policy = policies.forUrl(req.getUrl());
              const origin = req.getHeader('origin');
              // Browsers always send Origin on a WebSocket; other clients usually do not.
              if (policy && origin !== '' && !policy.allows(origin)) {
                addHeadersAfterStatus(res, policy.responseHeaders(origin));
                writeError(res, new SwitchyardError('SY_ORIGIN_REFUSED', `origin ${origin} may not open a WebSocket here`));
                return;
              }
              if (policy) addHeadersAfterStatus(res, policy.responseHeaders(origin));
              upgrade?.(res, req, context);
            },
          };
          target.ws(pattern, checked);
          return receiver;
        };
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
}
