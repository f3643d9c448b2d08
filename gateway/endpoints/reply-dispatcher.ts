/**
 * Frames from a replica, applied to the requests they name: results and files finish a request,
 * stream frames feed its sink, an error fails it or sends it back for a retry. A `chunk` frame is a
 * run of chunks (chunk-run.ts): numbered, counted against the stream's credit and handed to the
 * sink as one. Stream credit goes back the same way it came: one credit per chunk the client
 * took, returned by the replica at the end of the turn (replica.ts), for all its streams at once.
 */
import { randomBytes } from 'node:crypto';
import { close } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { fromWire, responseTooLarge, type SwitchyardError } from '../../workers/protocol/errors.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import { runLength } from '../../workers/protocol/chunk-run.js';
import { chunksSent, chunksTaken } from '../../workers/protocol/credit.js';
import type { Call } from './call.js';
import type { Replica } from './replica.js';
import { noteCheckpoint, streamStarted } from './stream-resume.js';

/** Random bytes for stream ids, drawn for 256 ids at a time (one call to the system's CSPRNG, not one per stream). */
const ID_BYTES = 15;
let idPool = Buffer.alloc(0);
let idAt = 0;

/** An unguessable stream id: 15 random bytes, 20 characters of base64url. */
function newStreamId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idAt = 0;
  }
  const id = idPool.toString('base64url', idAt, idAt + ID_BYTES);
  idAt += ID_BYTES;
  return id;
}

/** What the endpoint does with a request once a frame decided its fate. */
export interface CallOutcomes {
  /** Gives the request's token back to `replica`; with `learnAt`, the replica learns its service time as of then. */
  release(call: Call, replica: Replica, learnAt?: number): void;
  /** The request was answered with `status`. */
  finished(call: Call, status: number, now: number): void;
  /** The request failed: retried elsewhere when it may be, else answered with `err`. */
  failOrRetry(call: Call, err: SwitchyardError): void;
  /** The replica confirmed it read the cancel of request `id`: its thread is alive. */
  cancelConfirmed(replica: Replica, id: number): void;
  /** The replica survived a fault outside any request (a predictor's unhandled rejection). */
  fault(replica: Replica, kind: 'unhandled_rejection', message: string): void;
  /** A stream's first frame: its time limits start to apply. */
  streamStarted(call: Call): void;
  /** A stream chunk came from the replica or the client took one. */
  streamProgress(call: Call, now: number): void;
  /** Frames were applied: queued requests may run. */
  pump(): void;
}

export class ReplyDispatcher {
  constructor(
    private readonly outcomes: CallOutcomes,
    private readonly now: () => number,
    /** Results above this are refused here too (replicas refuse them first; node agents may not know the limit). */
    private readonly maxResponseBytes = Infinity,
  ) {}

  dispatch(replica: Replica, frames: readonly ReplyFrame[]): void {
    const now = this.now();
    const { outcomes } = this;
    for (const frame of frames) {
      if (frame.t === 'cancelled') {
        outcomes.cancelConfirmed(replica, frame.id);
        continue;
      }
      if (frame.t === 'fault') {
        outcomes.fault(replica, frame.kind, frame.message);
        continue;
      }
      const call = replica.calls.get(frame.id);
      if (!call) {
        // Its request was cancelled or timed out while the file was being written.
        if (frame.t === 'file') {
          close(frame.fd, () => undefined);
          if (frame.remove) void unlink(frame.path).catch(() => undefined);
        }
        continue;
      }
      switch (frame.t) {
        case 'result':
          if (frame.body.byteLength > this.maxResponseBytes) {
            outcomes.release(call, replica, now);
            outcomes.failOrRetry(call, responseTooLarge(frame.body.byteLength, this.maxResponseBytes));
            break;
          }
          outcomes.release(call, replica, now);
          outcomes.finished(call, 200, now);
          call.sink.onResult(frame.body, frame.contentType);
          break;
        case 'file':
          outcomes.release(call, replica, now);
          outcomes.finished(call, 200, now);
          call.sink.onFile(frame.path, frame.size, frame.contentType, frame.remove, frame.fd);
          break;
        case 'start':
          if (streamStarted(call, frame)) {
            call.streamId = newStreamId();
            outcomes.streamStarted(call);
            call.sink.onStreamStart(call.streamId);
          } else {
            // A sibling took over a resumed stream: its limits apply again, the idle clock from now.
            outcomes.streamStarted(call);
            outcomes.streamProgress(call, now);
          }
          break;
        case 'chunk': {
          const n = runLength(frame);
          noteCheckpoint(call, frame);
          // Its credit is spent (chunks unread, or read but not yet credited): it waits for the client.
          if (chunksSent(call, { bytes: frame.data.byteLength, sizes: frame.sizes }, call.env.credit)) replica.park(call);
          outcomes.streamProgress(call, now);
          const firstSeq = call.seq + 1;
          call.seq += n;
          call.sink.onChunks({ bytes: frame.data, sizes: frame.sizes, firstSeq });
          break;
        }
        case 'end':
          outcomes.release(call, replica);
          outcomes.finished(call, 200, now);
          call.sink.onStreamEnd(frame.value);
          break;
        case 'error':
          outcomes.release(call, replica);
          outcomes.failOrRetry(call, fromWire(frame.error));
          break;
      }
    }
    outcomes.pump();
  }

  /** The sink wrote `n` chunks of a stream to its client: their credit goes back to the replica this turn. */
  ack(call: Call, n = 1): void {
    if (call.state !== 'streaming' || !call.replica) return;
    if (call.creditDebt > 0) {
      // Chunks replayed to a reconnected client that its old connection had taken: no credit again.
      const debt = Math.min(n, call.creditDebt);
      call.unacked -= debt;
      call.creditDebt -= debt;
      n -= debt;
      if (n === 0) return;
    }
    // One credit per acknowledged chunk: the replica never runs further ahead of the client than
    // its initial credit.
    chunksTaken(call, n);
    this.outcomes.streamProgress(call, this.now());
    call.replica.owesCredit(call);
  }
}
