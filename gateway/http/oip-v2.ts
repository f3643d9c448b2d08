/**
 * The Open Inference Protocol v2 REST routes (KServe, Triton clients) on every endpoint:
 *
 *   GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
 *   GET  /v2/models/{m}[/versions/1], /v2/models/{m}[/versions/1]/ready
 *   POST /v2/models/{m}[/versions/1]/infer   JSON tensors, or the binary tensor extension
 *
 * An infer request runs as an ordinary request of the endpoint (same queue, replicas, keys,
 * deadlines); the translation between v2 tensors and ours is oip-tensors.ts. The answer comes
 * back from the replica as msgpack, so tensors stay bytes until they are written. Model metadata
 * is the predictor's `metadata()` (the ONNX predictor reports its session's inputs and outputs),
 * asked of a replica once and kept. Errors are the protocol's `{"error": "..."}`, with our code
 * alongside as `"code"`. Endpoints have one version, "1".
 */
import { createRequire } from 'node:module';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../../native/uws.js';
import { SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import { unpack } from '../../workers/protocol/envelopes.js';
import type { ModelMetadata } from '../../workers/predictor/api.js';
import type { Call } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { ApiKeys } from './auth.js';
import { readBody } from './body.js';
import { inferResponse, parseInferRequest, v2Datatype, v2Shape, type InferRequest } from './oip-tensors.js';
import { buildCall, requestOrigin, type RequestOrigin, type RequestSink } from './request-builder.js';
import { requestLimits } from './request-limits.js';
import { statusLine } from './status-lines.js';

export interface OpenInferenceContext {
  endpoints: ReadonlyMap<string, Endpoint>;
  keys: ReadonlyMap<string, ApiKeys>;
  region: string;
  maxBodyBytes: number;
  isDraining(): boolean;
  /** Whether every endpoint can serve (as /readyz). */
  ready(): boolean;
}

const MODEL_VERSION = '1';
/** dist/gateway/http/ → the package root. */
const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

function writeV2(res: HttpResponse, status: number, value: unknown): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', 'application/json');
  res.end(JSON.stringify(value));
}

/** The protocol's error shape, `{"error": "<message>"}`, with our stable code beside it. */
function writeV2Error(res: HttpResponse, err: SwitchyardError): void {
  res.writeStatus(statusLine(err.status));
  res.writeHeader('content-type', 'application/json');
  if (err.retryAfterS !== undefined) res.writeHeader('retry-after', String(Math.max(1, Math.ceil(err.retryAfterS))));
  res.end(JSON.stringify({ error: err.message, code: err.code }));
}

/** Answers a request of one call with a callback per outcome; nothing is streamed. */
class UnarySink implements RequestSink {
  call: Call | undefined;
  aborted = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly answer: (body: Uint8Array, contentType: string) => void,
  ) {}

  onResult(body: Uint8Array, contentType: string): void {
    if (this.aborted) return;
    this.res.cork(() => {
      try {
        this.answer(body, contentType);
      } catch (err) {
        writeV2Error(this.res, toSwitchyardError(err, 'SY_PREDICTOR_OUTPUT'));
      }
    });
  }

  onError(err: SwitchyardError): void {
    if (!this.aborted) this.res.cork(() => writeV2Error(this.res, err));
  }

  onFile(): void {
    this.onError(new SwitchyardError('SY_PREDICTOR_OUTPUT', 'the predictor answered with a file, which the Open Inference Protocol cannot carry'));
  }

  onStreamStart(): void {
    // Never asked for: v2 requests are unary.
  }

  onChunks(): void {
    // Never asked for: v2 requests are unary.
  }

  onStreamEnd(): void {
    // Never asked for: v2 requests are unary.
  }
}

function decodeAnswer(body: Uint8Array, contentType: string): unknown {
  if (contentType === 'application/msgpack') return unpack(body);
  if (contentType === 'application/json') return JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  return body;
}

export function installOpenInference(app: TemplatedApp, ctx: OpenInferenceContext): void {
  const metadata = new Map<string, ModelMetadata | null>();

  /** The endpoint a model route names, its key checked; undefined once `res` was answered. */
  const modelFor = (res: HttpResponse, req: HttpRequest): Endpoint | undefined => {
    const name = decodeURIComponent(req.getParameter(0) ?? '');
    const version = req.getParameter(1) ?? '';
    const endpoint = ctx.endpoints.get(name);
    try {
      if (!endpoint) throw new SwitchyardError('SY_NOT_FOUND', `no model named "${name}"`);
      if (version !== '' && version !== MODEL_VERSION) throw new SwitchyardError('SY_NOT_FOUND', `model "${name}" has no version "${version}"; it has "${MODEL_VERSION}"`);
      if (ctx.isDraining()) throw new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down', { retryAfterS: 1 });
      ctx.keys.get(name)?.check(req.getHeader('authorization'));
    } catch (err) {
      writeV2Error(res, toSwitchyardError(err));
      return undefined;
    }
    return endpoint;
  };

  app.get('/v2/health/live', (res) => writeV2(res, 200, { live: true }));
  app.get('/v2/health/ready', (res) => {
    const ready = ctx.ready() && !ctx.isDraining();
    writeV2(res, ready ? 200 : 503, { ready });
  });
  app.get('/v2', (res) => writeV2(res, 200, { name: 'switchyard', version: VERSION, extensions: ['binary_tensor_data'] }));

  const modelReady = (res: HttpResponse, req: HttpRequest): void => {
    const endpoint = modelFor(res, req);
    if (!endpoint) return;
    // An endpoint allowed to sit at zero replicas serves by starting one.
    const ready = endpoint.readyCount > 0 || (endpoint.desired === 0 && endpoint.config.autoscaling?.min_replicas === 0);
    writeV2(res, ready ? 200 : 503, { name: endpoint.name, ready });
  };
  app.get('/v2/models/:model/ready', modelReady);
  app.get('/v2/models/:model/versions/:version/ready', modelReady);

  const modelMetadata = (res: HttpResponse, req: HttpRequest): void => {
    const endpoint = modelFor(res, req);
    if (!endpoint) return;
    const describe = (meta: ModelMetadata | null) => ({
      name: endpoint.name,
      versions: [MODEL_VERSION],
      platform: meta?.platform ?? 'switchyard',
      inputs: (meta?.inputs ?? []).map((t) => ({ name: t.name, datatype: v2Datatype(t.type), shape: v2Shape(t.shape) })),
      outputs: (meta?.outputs ?? []).map((t) => ({ name: t.name, datatype: v2Datatype(t.type), shape: v2Shape(t.shape) })),
    });
    const known = metadata.get(endpoint.name);
    if (known !== undefined) {
      writeV2(res, 200, describe(known));
      return;
    }
    const sink = new UnarySink(res, (body, contentType) => {
      const meta = decodeAnswer(body, contentType) as ModelMetadata | null;
      metadata.set(endpoint.name, meta);
      writeV2(res, 200, describe(meta));
    });
    res.onAborted(() => abort(sink, endpoint));
    submit(endpoint, sink, { input: null, stream: false, op: 'metadata' }, endpoint.config.timeout_ms, requestOrigin(req, ctx.region));
  };
  app.get('/v2/models/:model', modelMetadata);
  app.get('/v2/models/:model/versions/:version', modelMetadata);

  const infer = (res: HttpResponse, req: HttpRequest): void => {
    const endpoint = modelFor(res, req);
    if (!endpoint) return;
    const config = endpoint.config;
    let timeoutMs: number;
    let headerLength: number | undefined;
    try {
      timeoutMs = requestLimits(req, config).timeoutMs;
      const declared = req.getHeader('inference-header-content-length');
      if (declared !== '') {
        headerLength = Number(declared);
        if (!Number.isSafeInteger(headerLength) || headerLength < 0) throw new SwitchyardError('SY_BAD_REQUEST', 'Inference-Header-Content-Length must be a non-negative integer');
      }
    } catch (err) {
      writeV2Error(res, toSwitchyardError(err));
      return;
    }
    const limit = config.max_body_bytes ?? ctx.maxBodyBytes;
    const origin = requestOrigin(req, ctx.region);
    let request: InferRequest | undefined;
    const sink = new UnarySink(res, (body, contentType) => {
      const { json, binary } = inferResponse(endpoint.name, request!, decodeAnswer(body, contentType));
      res.writeStatus(statusLine(200));
      if (binary.length === 0) {
        res.writeHeader('content-type', 'application/json');
        res.end(json);
        return;
      }
      const head = Buffer.from(json);
      res.writeHeader('content-type', 'application/octet-stream');
      res.writeHeader('inference-header-content-length', String(head.length));
      res.end(Buffer.concat([head, ...binary]));
    });
    res.onAborted(() => abort(sink, endpoint));
    readBody(
      res,
      limit,
      (body) => {
        if (sink.aborted) return;
        try {
          request = parseInferRequest(body, headerLength);
        } catch (err) {
          res.cork(() => writeV2Error(res, toSwitchyardError(err)));
          return;
        }
        submit(endpoint, sink, { input: request.input, stream: false }, timeoutMs, origin);
      },
      (err) => {
        if (!sink.aborted) res.cork(() => writeV2Error(res, err));
      },
    );
  };
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);
}

function abort(sink: UnarySink, endpoint: Endpoint): void {
  sink.aborted = true;
  if (sink.call) endpoint.cancel(sink.call);
}

function submit(endpoint: Endpoint, sink: UnarySink, payload: { input: unknown; stream: false; op?: 'metadata' }, timeoutMs: number, origin: RequestOrigin): void {
  endpoint.submit(
    buildCall(sink, {
      payload,
      // msgpack keeps output tensors as bytes on their way back.
      encoding: 'msgpack',
      fileType: undefined,
      timeoutMs,
      streamTimeouts: {},
      origin,
    }),
  );
}
