/**
 * The Predictor API: what a user's module exports (default export: a class or an object).
 *
 *   export default class {
 *     async setup(ctx) { ... load the model on ctx.device ... }
 *     predict(input, req) { return { ... } }            // JSON-able, bytes, or a file path
 *                                                       // (for a file media type: bytes, or a path)
 *     async *predictStream(input, req) { yield '...' }  // when the body says "stream": true
 *     ready() { return true }                           // optional
 *     resumable = 'deterministic'                       // optional: see StreamResumability
 *   }
 */

export interface SetupContext {
  /** Endpoint name. */
  readonly endpoint: string;
  /** Replica id, unique within the gateway. */
  readonly replicaId: string;
  /** `cpu`, `cuda:0`, `coreml`, ... */
  readonly device: string;
  /**
   * Folder to write file outputs into; only files inside it are served. By default on a
   * memory-backed file system where the machine has one (/dev/shm, else $XDG_RUNTIME_DIR, else the
   * OS temporary folder); the endpoint's `output_dir` overrides it.
   */
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
  /**
   * The non-JSON media type the client accepts and the endpoint produces, else undefined. Answer
   * it with the file's bytes (Uint8Array, Buffer or ArrayBuffer: the fastest way, served from
   * memory, never written to disk) or with the path of a file written into `ctx.outputDir`.
   * Bytes of 64 KiB or more that fill their ArrayBuffer are moved to the gateway's thread, not
   * copied: the ArrayBuffer is empty here afterwards, so return a copy of bytes you keep. Bytes in
   * a SharedArrayBuffer are shared instead (neither copied nor moved): keep a cache there and
   * return it as often as you like, but do not change it while answers may still be sending.
   */
  readonly accept: string | undefined;
  /** Epoch milliseconds by which the answer is due. */
  readonly deadline: number;
  /** Fires when the client goes away, cancels, or the deadline passes. */
  readonly signal: AbortSignal;
  /**
   * Set when this call continues a stream whose replica died, for a predictor declared
   * `resumable: 'checkpoint'`: the last checkpoint it yielded and the sequence number of the chunk
   * that carried it. Yield the chunks that come after that one. Undefined on a first run, and
   * when the stream died before any checkpoint (then start over: same input, same chunks).
   */
  readonly resumeFrom?: ResumePoint;
}

export interface ResumePoint {
  /** Sequence number (from 1) of the chunk the checkpoint came with. */
  readonly seq: number;
  /** The value the predictor yielded as `checkpoint` with that chunk. */
  readonly checkpoint: unknown;
}

/**
 * How a stream can be continued on another replica when its replica dies mid-stream:
 *
 * - `deterministic`: the same input yields the same chunks (seed any randomness from the input).
 *   The sibling runs the stream again from the start; chunks already delivered are dropped in the
 *   replica, before they cost credit or a network hop.
 * - `checkpoint`: predictStream may yield `{ chunk, checkpoint }` instead of a bare chunk; the
 *   checkpoint (any msgpack-able value but undefined) is the state needed to produce the chunks
 *   after that one. The sibling is called with `req.resumeFrom`; any chunk it yields again that
 *   was already delivered is dropped.
 *
 * Without it a stream whose replica dies ends with SY_REPLICA_LOST.
 */
export type StreamResumability = 'deterministic' | 'checkpoint';

/** A chunk with the state to resume after it (predictors declared `resumable: 'checkpoint'`). */
export interface CheckpointedChunk {
  readonly chunk: StreamChunk;
  readonly checkpoint: unknown;
}

export type StreamChunk = string | Uint8Array;

/** One input or output as the model declares it: a wire type (`float32`, ...) and a shape where a string or -1 is a free dimension. */
export interface TensorMetadata {
  readonly name: string;
  readonly type: string;
  readonly shape: ReadonlyArray<number | string>;
}

/** What a predictor can say about its model (the Open Inference Protocol's model metadata). */
export interface ModelMetadata {
  /** e.g. `onnxruntime_onnx`. */
  readonly platform?: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
}

export interface Predictor {
  setup?(ctx: SetupContext): unknown | Promise<unknown>;
  predict(input: unknown, req: PredictRequest): unknown | Promise<unknown>;
  predictStream?(input: unknown, req: PredictRequest): AsyncIterable<StreamChunk | CheckpointedChunk> | Iterable<StreamChunk | CheckpointedChunk>;
  /** Whether and how a stream survives the death of its replica (see StreamResumability). */
  readonly resumable?: StreamResumability | undefined;
  /**
   * Optional dynamic batching: the unary requests that reached the replica together, in one call.
   * Returns one result (or an Error for that request alone) per input, in order.
   */
  predictBatch?(inputs: unknown[], reqs: PredictRequest[]): Promise<unknown[]>;
  ready?(): boolean | Promise<boolean>;
  /** Optional: the model's inputs and outputs, reported by `GET /v2/models/{name}`. */
  metadata?(): ModelMetadata | Promise<ModelMetadata>;
  teardown?(): unknown | Promise<unknown>;
}
