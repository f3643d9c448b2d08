/**
 * One request inside an endpoint, whatever transport it came from. The transport (HTTP or a
 * WebSocket message) implements `CallSink`; the endpoint drives it from the replica's frames.
 */
import type { ChunkRun } from '../../workers/protocol/chunk-run.js';
import { BytesInFlight } from '../../workers/protocol/credit.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import type { RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { StreamResumability } from '../../workers/predictor/api.js';
import type { Replica } from './replica.js';
import type { StreamTimeouts } from './stream-deadlines.js';

export interface CallSink {
  onResult(body: Uint8Array, contentType: string): void;
  /** `fd` is open and checked (workers/pool/output-files.ts): the sink serves it and closes it. */
  onFile(path: string, size: number, contentType: string, remove: boolean, fd: number): void;
  /** The stream's first frame; `streamId` names it for reconnection (header, SSE ids, WS `stream`). */
  onStreamStart(streamId: string): void;
  /**
   * Chunks to write: the run a replica produced in one turn (chunk-run.ts), numbered from
   * `run.firstSeq`; seqs number the stream's chunks from 1, with no gap or repeat whatever replica
   * produced them. The sink returns credit with `endpoint.ack(call, n)` once the client took `n`
   * of them. A sink writes a run as one piece (one socket write, one cork), never waiting for more.
   */
  onChunks(run: ChunkRun): void;
  /** `returned`: what predictStream returned, when anything. */
  onStreamEnd(returned?: unknown): void;
  onError(err: SwitchyardError): void;
}

export type CallState = 'queued' | 'running' | 'streaming' | 'done';

/** Bodies this large are dropped as soon as their request is answered (smaller ones cost nothing to keep). */
const LARGE_BODY_BYTES = 64 * 1024;

export class Call {
  state: CallState = 'queued';
  replica: Replica | undefined;
  attempts = 0;
  /** performance.now() when it was handed to a replica. */
  dispatchedAt = 0;
  /** Chunks handed to the sink and not yet acknowledged by it (streams). */
  unacked = 0;
  /** Chunks acknowledged whose credit has not gone back to the replica yet (streams; returned once per turn). */
  acked = 0;
  /** The sizes of the chunks of both (credit.ts): the replica also waits once they reach STREAM_CREDIT_BYTES. */
  readonly inFlight = new BytesInFlight();
  /** The sequence number of the last chunk handed to the sink (streams; 0 before the first). */
  seq = 0;
  /** Names the stream once it started (random, unguessable: it is what a reconnecting client presents). */
  streamId: string | undefined;
  /** How the stream's predictor can be resumed on a sibling (from its first `start` frame). */
  resumable: StreamResumability | undefined;
  /** The last checkpoint the predictor attached, with the seq of its chunk. */
  checkpoint: { seq: number; value: unknown } | undefined;
  /** Acknowledgements still to come that return no credit: chunks replayed to a reconnected client that its old connection had taken. */
  creditDebt = 0;
  /** Times the stream moved to another replica after its replica died. */
  resumes = 0;
  /** The request's own time limit (its deadline minus its arrival); a resume gets it again. */
  readonly timeoutMs: number;
  readonly startedAt: number;
  /** This request's stream limits; the endpoint's when the transport sets none. */
  streamTimeouts: StreamTimeouts | undefined;

  constructor(
    readonly env: RequestEnvelope,
    /** The transport's sink, or a relay in front of it (stream-reconnect.ts). */
    public sink: CallSink,
    /** Regions to prefer, in order (the client's, then the gateway's). */
    readonly regions: readonly string[],
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.timeoutMs = Math.max(1, env.deadline - Date.now());
  }

  get id(): number {
    return this.env.id;
  }

  /**
   * The request is answered: it will not be sent again, so a large body is let go now. A
   * transport's handlers (uWS keeps a response's callbacks until its connection's next request)
   * may keep this call reachable long after; its body must not stay with it.
   */
  settle(): void {
    this.state = 'done';
    const body = this.env.body;
    if (body !== undefined && body.byteLength >= LARGE_BODY_BYTES) delete this.env.body;
  }

  get deadline(): number {
    return this.env.deadline;
  }

  /** Streams leave the request deadline once their replica started them (stream limits apply then). */
  get settled(): boolean {
    return this.state === 'done' || this.state === 'streaming';
  }
}
