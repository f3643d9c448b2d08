/**
 * OpenAI-compatible routes for endpoints that opt in with `openai: { model }`:
 *
 *   GET  /v1/models, /v1/models/{model}
 *   POST /v1/chat/completions, /v1/completions   (`"stream": true` → SSE chunks ending `data: [DONE]`)
 *
 * The predictor receives the OpenAI request body as it came and answers through `predictStream`:
 * each chunk it yields (text) is one delta. A request without `"stream": true` runs the same
 * stream and is answered with one object holding the text joined. What `predictStream` returns
 * may report `{ usage: { prompt_tokens, completion_tokens }, finish_reason }`: usage then appears
 * in the answer (and, for a stream asking `stream_options.include_usage`, in a last chunk);
 * `finish_reason` defaults to "stop". Keys are the endpoint's Bearer keys; errors come in
 * OpenAI's shape, `{"error": {"message", "type", "param", "code"}}` with our code as `code`.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '../../native/uws.js';
import { forEachChunk, runLength, type ChunkRun } from '../../workers/protocol/chunk-run.js';
import { SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import type { Call } from '../endpoints/call.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { ApiKeys } from './auth.js';
import { readBody } from './body.js';
import { HttpCall } from './http-call.js';
import { buildCall, requestOrigin, type RequestSink } from './request-builder.js';
import { requestLimits } from './request-limits.js';
import { statusLine } from './status-lines.js';
import type { StallWatch } from './stall-watch.js';
import type { CustomFraming } from './stream-framing.js';

export interface OpenAiContext {
  endpoints: ReadonlyMap<string, Endpoint>;
  keys: ReadonlyMap<string, ApiKeys>;
  region: string;
  maxBodyBytes: number;
  isDraining(): boolean;
  stalls: StallWatch;
}

type Kind = 'chat' | 'completion';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What predictStream returned, read defensively: usage and finish_reason when well-formed. */
function summaryOf(returned: unknown): { usage: Usage | undefined; finishReason: string } {
  const r = (returned ?? {}) as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown }; finish_reason?: unknown };
  const finishReason = typeof r.finish_reason === 'string' ? r.finish_reason : 'stop';
  const p = r.usage?.prompt_tokens;
  const c = r.usage?.completion_tokens;
  if (!Number.isSafeInteger(p) || !Number.isSafeInteger(c)) return { usage: undefined, finishReason };
  return { usage: { prompt_tokens: p as number, completion_tokens: c as number, total_tokens: (p as number) + (c as number) }, finishReason };
}

function errorType(err: SwitchyardError): string {
  if (err.status === 401) return 'authentication_error';
  if (err.status === 404) return 'not_found_error';
  if (err.status < 500) return 'invalid_request_error';
  return 'server_error';
}

function errorJson(err: SwitchyardError, param: string | null = null): string {
  return JSON.stringify({ error: { message: err.message, type: errorType(err), param, code: err.code } });
}

function writeOpenAiError(res: HttpResponse, err: SwitchyardError): void {
  res.writeStatus(statusLine(err.status));
  res.writeHeader('content-type', 'application/json');
  if (err.retryAfterS !== undefined) res.writeHeader('retry-after', String(Math.max(1, Math.ceil(err.retryAfterS))));
  res.end(errorJson(err));
}

const text = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');

/** The fields every answer of one request shares. */
interface Answer {
  id: string;
  created: number;
  model: string;
  kind: Kind;
  includeUsage: boolean;
}

/** One SSE event per delta, the finish, usage when asked for, then `[DONE]`. */
function openAiFraming(a: Answer): CustomFraming {
  const object = a.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const event = (choices: unknown[], usage?: Usage) =>
    `data: ${JSON.stringify({ id: a.id, object, created: a.created, model: a.model, choices, ...(usage ? { usage } : {}) })}\n\n`;
  const choice = (delta: string | undefined, finishReason: string | null, first: boolean) =>
    a.kind === 'chat'
      ? { index: 0, delta: delta === undefined ? {} : first ? { role: 'assistant', content: delta } : { content: delta }, logprobs: null, finish_reason: finishReason }
      : { index: 0, text: delta ?? '', logprobs: null, finish_reason: finishReason };
  let first = true;
  return {
    contentType: 'text/event-stream',
    chunk(data) {
      const out = Buffer.from(event([choice(text(data), null, first)]));
      first = false;
      return out;
    },
    end(returned) {
      const { usage, finishReason } = summaryOf(returned);
      let out = event([choice(undefined, finishReason, false)]);
      if (a.includeUsage) out += event([], usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
      return Buffer.from(`${out}data: [DONE]\n\n`);
    },
    error(err) {
      return `data: ${errorJson(err)}\n\n`;
    },
    writeError: writeOpenAiError,
  };
}

/** A request without `"stream"`: the chunks joined into one answer. */
class JoinedAnswer implements RequestSink {
  call: Call | undefined;
  aborted = false;
  private readonly parts: string[] = [];

  constructor(
    private readonly res: HttpResponse,
    private readonly endpoint: Endpoint,
    private readonly answer: Answer,
  ) {}

  onStreamStart(): void {
    // The answer goes out whole at the end.
  }

  onChunks(run: ChunkRun): void {
    forEachChunk(run, (data) => this.parts.push(text(data)));
    // Taken at once: credit goes straight back, so the generator never waits on this sink.
    if (this.call) this.endpoint.ack(this.call, runLength(run));
  }

  onStreamEnd(returned?: unknown): void {
    if (this.aborted) return;
    const { usage, finishReason } = summaryOf(returned);
    const content = this.parts.join('');
    const a = this.answer;
    const choice =
      a.kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finishReason }
        : { index: 0, text: content, logprobs: null, finish_reason: finishReason };
    const body = JSON.stringify({ id: a.id, object: a.kind === 'chat' ? 'chat.completion' : 'text_completion', created: a.created, model: a.model, choices: [choice], ...(usage ? { usage } : {}) });
    this.res.cork(() => {
      this.res.writeStatus(statusLine(200));
      this.res.writeHeader('content-type', 'application/json');
      this.res.end(body);
    });
  }

  onResult(body: Uint8Array): void {
    // Not reached (these requests always stream), but a whole answer is its text.
    this.parts.push(text(body));
    this.onStreamEnd();
  }

  onFile(): void {
    this.onError(new SwitchyardError('SY_PREDICTOR_OUTPUT', 'the predictor answered with a file, which an OpenAI completion cannot carry'));
  }

  onError(err: SwitchyardError): void {
    if (!this.aborted) this.res.cork(() => writeOpenAiError(this.res, err));
  }
}

let nextCompletion = 1;
const LIMIT_HEADERS = ['x-request-timeout-ms', 'x-stream-first-chunk-ms', 'x-stream-idle-ms'];

export function installOpenAi(app: TemplatedApp, ctx: OpenAiContext): void {
  const byModel = new Map<string, Endpoint>();
  for (const endpoint of ctx.endpoints.values()) if (endpoint.config.openai) byModel.set(endpoint.config.openai.model, endpoint);
  const startedAt = Math.floor(Date.now() / 1000);
  const modelObject = (id: string) => ({ id, object: 'model', created: startedAt, owned_by: 'switchyard' });

  /** Whether `authorization` may use the endpoint serving `model`. */
  const mayUse = (model: string, authorization: string): boolean => {
    const endpoint = byModel.get(model)!;
    try {
      ctx.keys.get(endpoint.name)?.check(authorization);
      return true;
    } catch {
      return false;
    }
  };

  // Only the models this caller's key opens.
  app.get('/v1/models', (res, req) => {
    const authorization = req.getHeader('authorization');
    const data = [...byModel.keys()].filter((m) => mayUse(m, authorization)).map(modelObject);
    res.writeStatus(statusLine(200));
    res.writeHeader('content-type', 'application/json');
    res.end(JSON.stringify({ object: 'list', data }));
  });

  app.get('/v1/models/:model', (res, req) => {
    const model = decodeURIComponent(req.getParameter(0) ?? '');
    if (!byModel.has(model) || !mayUse(model, req.getHeader('authorization'))) {
      writeOpenAiError(res, new SwitchyardError('SY_NOT_FOUND', `The model '${model}' does not exist`));
      return;
    }
    res.writeStatus(statusLine(200));
    res.writeHeader('content-type', 'application/json');
    res.end(JSON.stringify(modelObject(model)));
  });

  const complete = (kind: Kind) => (res: HttpResponse, req: HttpRequest) => {
    const authorization = req.getHeader('authorization');
    const origin = requestOrigin(req, ctx.region);
    // Limits need the endpoint, known once the body names the model: keep the headers now.
    const limitHeaders = new Map(LIMIT_HEADERS.map((name) => [name, req.getHeader(name)]));
    let sink: (RequestSink & { aborted: boolean }) | undefined;
    let endpoint: Endpoint | undefined;
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
      if (sink) {
        sink.aborted = true;
        if (sink instanceof HttpCall) sink.abort();
        else if (sink.call && endpoint) endpoint.cancel(sink.call);
      }
    });
    readBody(
      res,
      ctx.maxBodyBytes,
      (body) => {
        if (aborted) return;
        try {
          const parsed = parseRequest(body, kind);
          endpoint = byModel.get(parsed.model);
          if (!endpoint) throw new SwitchyardError('SY_NOT_FOUND', `The model '${parsed.model}' does not exist; GET /v1/models lists them`);
          if (ctx.isDraining()) throw new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down', { retryAfterS: 1 });
          ctx.keys.get(endpoint.name)?.check(authorization);
          const limit = endpoint.config.max_body_bytes ?? ctx.maxBodyBytes;
          if (body.byteLength > limit) throw new SwitchyardError('SY_PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`);
          const limits = requestLimits({ getHeader: (name) => limitHeaders.get(name) ?? '' }, endpoint.config);
          const answer: Answer = {
            id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${(nextCompletion++).toString(36)}${Date.now().toString(36)}`,
            created: Math.floor(Date.now() / 1000),
            model: parsed.model,
            kind,
            includeUsage: parsed.includeUsage,
          };
          const s = parsed.stream ? new HttpCall(res, endpoint, openAiFraming(answer), '', ctx.stalls) : new JoinedAnswer(res, endpoint, answer);
          sink = s;
          endpoint.submit(
            buildCall(s, {
              payload: { input: parsed.body, stream: true },
              encoding: 'json',
              fileType: undefined,
              timeoutMs: limits.timeoutMs,
              streamTimeouts: limits.stream,
              origin,
            }),
          );
        } catch (err) {
          res.cork(() => writeOpenAiError(res, toSwitchyardError(err)));
        }
      },
      (err) => {
        if (!aborted) res.cork(() => writeOpenAiError(res, err));
      },
    );
  };

  app.post('/v1/chat/completions', complete('chat'));
  app.post('/v1/completions', complete('completion'));
}

/** The fields the gateway reads; the predictor gets the whole body. */
function parseRequest(body: Uint8Array, kind: Kind): { body: Record<string, unknown>; model: string; stream: boolean; includeUsage: boolean } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text(body));
  } catch (err) {
    throw new SwitchyardError('SY_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new SwitchyardError('SY_BAD_REQUEST', 'the body must be a JSON object');
  const obj = parsed as Record<string, unknown>;
  if (typeof obj.model !== 'string' || obj.model === '') throw new SwitchyardError('SY_BAD_REQUEST', '"model" is required');
  if (kind === 'chat' && !Array.isArray(obj.messages)) throw new SwitchyardError('SY_BAD_REQUEST', '"messages" must be an array of {role, content}');
  if (kind === 'completion' && obj.prompt === undefined) throw new SwitchyardError('SY_BAD_REQUEST', '"prompt" is required');
  const options = obj.stream_options as { include_usage?: unknown } | null | undefined;
  return { body: obj, model: obj.model, stream: obj.stream === true, includeUsage: options?.include_usage === true };
}
