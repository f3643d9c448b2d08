/**
 * A stream whose replica dies mid-stream, continued on a sibling: the decisions, as functions
 * over the call's plain state. The endpoint applies them (requeue at the front, as for a unary
 * retry); the client's sink never learns that the replica changed.
 *
 * What makes the result one exact stream: the gateway numbers chunks as it hands them to the sink
 * (`call.seq`), and tells the sibling how many were delivered. The sibling's replica drops the
 * chunks up to that number (a deterministic predictor runs again from the start; a checkpointing
 * one resumes from its last checkpoint, possibly a few chunks back) and sends the rest, which the
 * gateway numbers on from where it stopped. Frames of the dead replica that arrive late are
 * dropped with it (its calls are released before the resume), so nothing is repeated.
 */
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import { DEFAULT_STREAM_CREDIT } from '../../workers/protocol/credit.js';
import type { Call } from './call.js';

/** A stream moves at most this many times: past that, its replicas are dying for a reason. */
export const MAX_RESUMES = 3;

/**
 * A `start` frame for the call. True when it is the stream's first (the sink must hear of it);
 * false for the sibling's start of a resumed stream, which the client must not see.
 */
export function streamStarted(call: Call, frame: Extract<ReplyFrame, { t: 'start' }>): boolean {
  call.state = 'streaming';
  if (call.resumes > 0) return false;
  call.unacked = 0;
  call.acked = 0;
  call.resumable = frame.resumable;
  return true;
}

/**
 * Remembers the checkpoint that came with a run of chunks about to be numbered from `call.seq + 1`:
 * that of its chunk at `cpAt` (the last when absent).
 */
export function noteCheckpoint(call: Call, frame: Extract<ReplyFrame, { t: 'chunk' }>): void {
  if (frame.cp === undefined) return;
  const at = frame.cpAt ?? (frame.sizes === undefined ? 0 : frame.sizes.length - 1);
  call.checkpoint = { seq: call.seq + 1 + at, value: frame.cp };
}

/** Whether a stream under way on a replica that died can continue on another. */
export function canResume(call: Call, closing: boolean): boolean {
  return call.state === 'streaming' && call.resumable !== undefined && call.resumes < MAX_RESUMES && !closing;
}

/**
 * Readies the call to be queued again: where the sibling picks up, full credit (the dead
 * replica's credit died with it), and a fresh deadline of the request's own length for the
 * hand-over (a stream is exempt from its deadline once under way; a resume must start in time).
 */
export function prepareResume(call: Call, now: number): void {
  call.resumes++;
  const checkpoint = call.resumable === 'checkpoint' ? call.checkpoint : undefined;
  call.env.resume = checkpoint ? { from: checkpoint.seq, checkpoint: checkpoint.value, delivered: call.seq } : { from: 0, delivered: call.seq };
  call.env.credit = DEFAULT_STREAM_CREDIT;
  call.env.deadline = now + call.timeoutMs;
  // Credit owed to the dead replica is owed to no one: those chunks leave the count.
  call.inFlight.credited(call.acked);
  call.acked = 0;
}
