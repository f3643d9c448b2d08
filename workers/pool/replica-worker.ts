/**
 * The code inside one replica's worker thread. Piscina starts the thread and runs `setup` as a
 * task; after that, requests arrive in batches on a dedicated MessagePort (one message per
 * gateway event-loop turn, msgpack in a transferred buffer) and frames go back the same way,
 * batched per turn of this thread. A piscina task per request would cost ~32 µs of CPU each.
 *
 * Cancellation is cooperative: a `cancel` aborts the request's AbortSignal and stops its stream
 * generator, and is confirmed at once with a `cancelled` frame, so the gateway knows this thread's
 * event loop still runs (one that never confirms is terminated and replaced).
 *
 * A promise the predictor rejects with no handler is reported (a `fault` frame: the gateway logs and
 * counts it) and the thread keeps serving: it says nothing about the other requests on this
 * replica, which would all be lost if it killed the thread. An uncaught exception still ends the
 * thread, because it can leave the predictor's state half-changed. Streams are credit-based: the replica sends at most `credit` chunks ahead of what
 * the gateway has written to the client, so a slow reader pauses the generator.
 */
import { mkdirSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { responseTooLarge, SwitchyardError, toSwitchyardError } from '../protocol/errors.js';
import type { Predictor, PredictRequest } from '../predictor/api.js';
import { loadPredictor } from '../predictor/loader.js';
import { CreditGate } from '../protocol/credit.js';
import type { ReplyFrame, RequestEnvelope } from '../protocol/envelopes.js';
import { Cancellation } from './cancellation.js';
import { IdleParking } from './idle-park.js';
import type { Pollers } from './polling.js';
import { Inbox, Mailbox } from './mailbox.js';
import { asBytes, chunkBytes, decodeBody, encodeResult } from './encode.js';
import { openOutputFile } from './output-files.js';
import { OUT_OF_BAND_BYTES, packFramesInline, postFrames, readRequests, type ThreadMessage } from './payload-transfer.js';
import { ReplyOutbox } from './reply-outbox.js';
import { TurnSpreader } from './turn-spreader.js';

export interface SetupTask {
  op: 'setup';
  port: MessagePort;
  endpoint: string;
  replicaId: string;
  device: string;
  predictorPath?: string | undefined;
  modelPath?: string | undefined;
  outputDir: string;
  settings: Record<string, unknown>;
  keepFiles: boolean;
  maxResponseBytes?: number | undefined;
  /** Shared with the gateway's link: this thread parks there while idle (idle-park.ts). */
  parking: SharedArrayBuffer;
  /** Which threads of the process may poll for work while idle (idle-park.ts). */
  pollers: Pollers;
  /** Where a lone request comes while this thread polls, and its answer goes while the gateway polls (mailbox.ts). */
  requestBox: SharedArrayBuffer;
  replyBox: SharedArrayBuffer;
}

export interface StopTask {
  op: 'stop';
}

interface Active {
  cancel: Cancellation;
  /** A stream's credit, made when it starts streaming (unary requests never need one). */
  credit?: CreditGate;
}

let predictor: Predictor | undefined;
let setupTask: SetupTask | undefined;
let port: MessagePort | undefined;
const active = new Map<number, Active>();
const largeBodies = new TurnSpreader();
/**
 * Frames produced in one turn leave as one message, a stream's chunks joined into runs; once no
 * request is left running, at once (the turn can only add frames of requests already answered,
 * and a lone request does not wait).
 */
const outbox = new ReplyOutbox((frames) => {
  if (!port) return;
  // The gateway polls for this answer: it goes in the mailbox, without waking the gateway's loop.
  if (replyBox?.isOpen) {
    const packed = packFramesInline(frames);
    if (packed && replyBox.put(packed)) return;
  }
  postFrames(port, frames);
  replyBox?.notePosted();
});

let parker: IdleParking<ThreadMessage> | undefined;
let replyBox: Mailbox | undefined;
let parkScheduled = false;

/** Once no request runs: after this turn, the thread parks until the gateway posts again. */
function parkSoon(): void {
  if (!parker || parkScheduled) return;
  parkScheduled = true;
  setImmediate(park);
}

function park(): void {
  parkScheduled = false;
  if (parker!.park(() => active.size === 0)) parkSoon();
}

function emit(frame: ReplyFrame): void {
  outbox.push(frame);
}

function emitError(id: number, err: unknown, fallback: 'SY_PREDICTOR_ERROR' | 'SY_INTERNAL' = 'SY_PREDICTOR_ERROR'): void {
  const e = toSwitchyardError(err, fallback);
  emit({ t: 'error', id, error: { code: e.code, message: e.message } });
}

function onMessage(message: ThreadMessage): void {
  const msg = readRequests(message);
  if ('reqs' in msg) {
    void handleMessage(msg.reqs);
    return;
  }
  const raw = msg;
  if (raw.t === 'credits') {
    grantCredits(raw.ids, raw.ns);
    return;
  }
  if (raw.t === 'cancel') emit({ t: 'cancelled', id: raw.id });
  const entry = active.get(raw.id);
  if (!entry) return;
  if (raw.t === 'cancel') {
    entry.cancel.abort(new SwitchyardError('SY_CANCELLED', 'the request was cancelled'));
    entry.credit?.open();
  } else if (raw.t === 'credit') {
    entry.credit?.grant(raw.n);
  }
}

/** Credit for several streams, returned by the gateway in one turn. */
function grantCredits(ids: readonly number[], ns: readonly number[]): void {
  for (let i = 0; i < ids.length; i++) active.get(ids[i]!)?.credit?.grant(ns[i]!);
}

interface Prepared {
  env: RequestEnvelope;
  input: unknown;
  stream: boolean;
  req: PredictRequest;
  entry: Active;
}

/** Registers the request and decodes its body; a body that does not decode is answered here. */
function prepare(env: RequestEnvelope): Prepared | undefined {
  const cancel = new Cancellation();
  const entry: Active = { cancel };
  active.set(env.id, entry);
  try {
    const { input, stream } = env.input !== undefined ? { input: env.input, stream: env.stream === true } : decodeBody(env.body, env.bodyType);
    const resume = env.resume;
    const req: PredictRequest = {
      id: String(env.id),
      headers: env.headers ?? {},
      accept: env.fileType,
      deadline: env.deadline,
      get signal() {
        return cancel.signal;
      },
      // A checkpointing predictor continues from its checkpoint; before the first one it starts over.
      ...(resume && resume.from > 0 && predictor!.resumable === 'checkpoint' ? { resumeFrom: { seq: resume.from, checkpoint: resume.checkpoint } } : {}),
    };
    return { env, input, stream: stream || env.stream === true, req, entry };
  } catch (err) {
    emitError(env.id, err);
    settled(env.id);
    return undefined;
  }
}

async function handle(p: Prepared): Promise<void> {
  try {
    if (p.stream) await runStream(p.env, p.input, p.req, p.entry);
    else await runUnary(p.env, p.input, p.req, p.entry.cancel);
  } catch (err) {
    if (!p.entry.cancel.aborted) emitError(p.env.id, err);
  } finally {
    settled(p.env.id);
  }
}

/** Request `id` is answered; once none runs, this turn's frames go at once and the thread may park. */
function settled(id: number): void {
  active.delete(id);
  if (active.size === 0) {
    outbox.flush();
    parkSoon();
  }
}

/**
 * Dynamic batching: when the predictor has predictBatch, the plain unary requests of one message
 * (everything that reached the gateway in one event-loop turn) go to it in one call.
 */
async function handleMessage(envs: RequestEnvelope[]): Promise<void> {
  const batch: Prepared[] = [];
  for (const env of envs) {
    if (env.op === 'metadata') {
      void answerMetadata(env.id);
      continue;
    }
    if (env.body !== undefined && env.body.byteLength >= OUT_OF_BAND_BYTES) {
      // A large body is decoded in a turn of its own, so cancels are read between them (turn-spreader.ts).
      largeBodies.run(() => {
        const p = prepare(env);
        if (p) void handle(p);
      });
      continue;
    }
    const p = prepare(env);
    if (!p) continue;
    if (p.stream || env.fileType || typeof predictor!.predictBatch !== 'function') void handle(p);
    else batch.push(p);
  }
  if (batch.length === 1) void handle(batch[0]!);
  if (batch.length < 2) return;
  let results: unknown[] | undefined;
  let failure: unknown;
  try {
    results = await predictor!.predictBatch!(
      batch.map((p) => p.input),
      batch.map((p) => p.req),
    );
    if (!Array.isArray(results) || results.length !== batch.length) {
      throw new SwitchyardError('SY_PREDICTOR_OUTPUT', `predictBatch returned ${Array.isArray(results) ? results.length : typeof results} results for ${batch.length} inputs`);
    }
  } catch (err) {
    failure = err;
  }
  batch.forEach((p, i) => {
    try {
      if (p.entry.cancel.aborted) return;
      const result = failure === undefined ? results![i] : undefined;
      if (failure !== undefined) throw failure;
      if (result instanceof Error) throw result;
      emitResult(p.env.id, result, p.env.encoding);
    } catch (err) {
      emitError(p.env.id, err);
    } finally {
      settled(p.env.id);
    }
  });
}

/** The predictor's `metadata()` (null without one), as a JSON result. */
async function answerMetadata(id: number): Promise<void> {
  try {
    const metadata = typeof predictor!.metadata === 'function' ? await predictor!.metadata() : null;
    const { body, contentType } = encodeResult(metadata, 'json');
    emit({ t: 'result', id, body, contentType });
  } catch (err) {
    emitError(id, err);
  }
}

async function runUnary(env: RequestEnvelope, input: unknown, req: PredictRequest, cancel: Cancellation): Promise<void> {
  const result = await predictor!.predict(input, req);
  if (cancel.aborted) return;
  if (env.fileType) {
    if (typeof result === 'string') {
      // Opened and checked now, in the turn predict returned in: what is served is this descriptor.
      const file = openOutputFile(result, setupTask!.outputDir);
      emit({ t: 'file', id: env.id, path: file.path, fd: file.fd, size: file.size, contentType: env.fileType, remove: !setupTask!.keepFiles });
      return;
    }
    // Bytes: the file's content itself, served from memory (moved here, never written to disk).
    const bytes = asBytes(result);
    if (bytes) {
      emitResult(env.id, bytes, env.encoding, env.fileType);
      return;
    }
    // Anything else: the predictor chose to answer inline (e.g. base64 in JSON).
  }
  emitResult(env.id, result, env.encoding);
}

/** Encodes a unary answer and sends it, unless it is over the endpoint's max_response_bytes. `fileType`: bytes answering a file request. */
function emitResult(id: number, result: unknown, encoding: RequestEnvelope['encoding'], fileType?: string): void {
  const encoded = encodeResult(result, encoding);
  const body = encoded.body;
  const contentType = fileType ?? encoded.contentType;
  const limit = setupTask?.maxResponseBytes;
  if (limit !== undefined && body.byteLength > limit) throw responseTooLarge(body.byteLength, limit);
  emit({ t: 'result', id, body, contentType });
}

/** A chunk as the outbox takes it: text stays text until it is written into the turn's run. */
const chunkData = (chunk: unknown): string | Uint8Array => (typeof chunk === 'string' ? chunk : chunkBytes(chunk));

/** A yielded `{ chunk, checkpoint }` (or a bare chunk). */
function splitCheckpoint(item: unknown): { data: string | Uint8Array; checkpoint: unknown } {
  if (item !== null && typeof item === 'object' && !ArrayBuffer.isView(item) && !(item instanceof ArrayBuffer) && 'chunk' in item) {
    const { chunk, checkpoint } = item as { chunk: unknown; checkpoint?: unknown };
    return { data: chunkData(chunk), checkpoint };
  }
  return { data: chunkData(item), checkpoint: undefined };
}

async function runStream(env: RequestEnvelope, input: unknown, req: PredictRequest, entry: Active): Promise<void> {
  const id = env.id;
  const credit = (entry.credit = new CreditGate(env.credit));
  if (typeof predictor!.predictStream !== 'function') {
    throw new SwitchyardError('SY_STREAM_UNSUPPORTED', 'this endpoint does not stream: its predictor has no predictStream()');
  }
  const resumable = predictor!.resumable;
  const iterable = predictor!.predictStream(input, req);
  emit(resumable ? { t: 'start', id, resumable } : { t: 'start', id });
  // A resumed stream: chunks are numbered from where the predictor picks up, and those the client
  // already has are dropped here, before they cost credit or a hop.
  let seq = req.resumeFrom ? req.resumeFrom.seq : 0;
  const delivered = env.resume?.delivered ?? 0;
  const iterator = asyncIteratorOf(iterable as AsyncIterable<unknown> | Iterable<unknown>);
  let returned: unknown;
  // Iterated by hand rather than by for-await over a wrapper that keeps the return value: that
  // wrapper was a second async generator every chunk went through. As for-await, the generator's
  // return() is called when the loop stops early or throws, so its finally blocks run.
  let exhausted = false;
  try {
    for (;;) {
      let step: IteratorResult<unknown>;
      try {
        step = await iterator.next();
      } catch (err) {
        exhausted = true;
        throw err;
      }
      if (step.done) {
        exhausted = true;
        returned = step.value;
        break;
      }
      if (entry.cancel.aborted) break;
      const { data, checkpoint } = splitCheckpoint(step.value);
      if (++seq <= delivered) continue;
      const size = outbox.chunk(id, data, resumable === 'checkpoint' ? checkpoint : undefined);
      const wait = credit.spend(size, entry.cancel);
      if (wait) await wait;
      if (entry.cancel.aborted) break;
    }
  } finally {
    if (!exhausted) await iterator.return?.();
  }
  if (!entry.cancel.aborted) emit(returned === undefined ? { t: 'end', id } : { t: 'end', id, value: returned });
}

/** An async iterator over what predictStream returned; a sync iterable's values are awaited, as for-await would. */
function asyncIteratorOf(iterable: AsyncIterable<unknown> | Iterable<unknown>): AsyncIterator<unknown> {
  if (Symbol.asyncIterator in iterable) return iterable[Symbol.asyncIterator]();
  return (async function* () {
    return yield* iterable;
  })();
}

function onUnhandledRejection(reason: unknown): void {
  const message = reason instanceof Error ? reason.message : String(reason);
  emit({ t: 'fault', id: 0, kind: 'unhandled_rejection', message });
}

async function setup(task: SetupTask): Promise<void> {
  setupTask = task;
  process.on('unhandledRejection', onUnhandledRejection);
  mkdirSync(task.outputDir, { recursive: true });
  predictor = await loadPredictor({ predictorPath: task.predictorPath, modelPath: task.modelPath });
  if (typeof predictor.setup === 'function') {
    try {
      await predictor.setup({
        endpoint: task.endpoint,
        replicaId: task.replicaId,
        device: task.device,
        outputDir: task.outputDir,
        modelPath: task.modelPath,
        settings: task.settings,
      });
    } catch (err) {
      throw new SwitchyardError('SY_PREDICTOR_ERROR', `setup() failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  if (typeof predictor.ready === 'function' && !(await predictor.ready())) {
    throw new SwitchyardError('SY_PREDICTOR_ERROR', 'the predictor reported not ready after setup()');
  }
  port = task.port;
  const inbox = new Inbox<ThreadMessage>(port, new Mailbox(task.requestBox), onMessage);
  parker = new IdleParking(task.parking, task.pollers, inbox);
  replyBox = new Mailbox(task.replyBox);
}

async function stop(): Promise<void> {
  for (const entry of active.values()) entry.cancel.abort(new SwitchyardError('SY_CANCELLED', 'the replica is stopping'));
  outbox.flush();
  try {
    await predictor?.teardown?.();
  } finally {
    port?.close();
  }
}

export type TaskResult = { ok: true } | { ok: false; error: { code: string; message: string } };

/** Piscina's task entry. Errors come back as data (code + message): Error properties do not survive the hop. */
export default async function run(task: SetupTask | StopTask): Promise<TaskResult> {
  try {
    if (task.op === 'setup') await setup(task);
    else await stop();
    return { ok: true };
  } catch (err) {
    const e = toSwitchyardError(err, 'SY_PREDICTOR_ERROR');
    return { ok: false, error: { code: e.code, message: e.message } };
  }
}
