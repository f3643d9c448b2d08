/**
 * The Predictor API: what a user's module exports (default export: a class or an object).
 *
 *   export default class {
 *     async setup(ctx) { ... load the model on ctx.device ... }
 *     predict(input, req) { return { ... } }            // JSON-able, bytes, or a file path
 *     async *predictStream(input, req) { yield '...' }  // when the body says "stream": true
 *     ready() { return true }                           // optional
 *   }
 */

export interface SetupContext {
  /** Endpoint name. */
  readonly endpoint: string;
  /** Replica id, unique within the gateway. */
  readonly replicaId: string;
  /** `cpu`, `cuda:0`, `coreml`, ... */
  readonly device: string;
  /** Folder to write file outputs into; only files inside it are served. */
  readonly outputDir: string;
  /** The ONNX model path when the endpoint declares `model:`. */
  readonly modelPath?: string | undefined;
  /** The endpoint's `settings` from the config. */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface PredictRequest {
  /** The gateway's id for this request. */
  readonly id: string;
  /** Request headers (lower-case names), minus Authorization. */
  readonly headers: Readonly<Record<string, string>>;
  /** The non-JSON media type the client accepts and the endpoint produces (then return a file path), else undefined. */
  readonly accept: string | undefined;
  /** Epoch milliseconds by which the answer is due. */
  readonly deadline: number;
  /** Fires when the client goes away, cancels, or the deadline passes. */
  readonly signal: AbortSignal;
}

export type StreamChunk = string | Uint8Array;

export interface Predictor {
  setup?(ctx: SetupContext): unknown | Promise<unknown>;
  predict(input: unknown, req: PredictRequest): unknown | Promise<unknown>;
  predictStream?(input: unknown, req: PredictRequest): AsyncIterable<StreamChunk> | Iterable<StreamChunk>;
  /**
   * Optional dynamic batching: the unary requests that reached the replica together, in one call.
   * Returns one result (or an Error for that request alone) per input, in order.
   */
  predictBatch?(inputs: unknown[], reqs: PredictRequest[]): Promise<unknown[]>;
  ready?(): boolean | Promise<boolean>;
  teardown?(): unknown | Promise<unknown>;
}
