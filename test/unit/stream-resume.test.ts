import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Call, type CallSink } from '../../gateway/endpoints/call.js';
import { canResume, MAX_RESUMES, noteCheckpoint, prepareResume, streamStarted } from '../../gateway/endpoints/stream-resume.js';

const sink: CallSink = { onResult() {}, onFile() {}, onStreamStart() {}, onChunks() {}, onStreamEnd() {}, onError() {} };

function streamingCall(resumable: 'deterministic' | 'checkpoint' | undefined): Call {
  const call = new Call({ id: 1, encoding: 'json', deadline: Date.now() + 5_000 }, sink, ['local'], 0);
  assert.equal(streamStarted(call, resumable ? { t: 'start', id: 1, resumable } : { t: 'start', id: 1 }), true);
  return call;
}

test('a checkpointing stream resumes from its last checkpoint and skips what was delivered', () => {
  const call = streamingCall('checkpoint');
  for (let i = 0; i < 7; i++) {
    noteCheckpoint(call, i === 4 ? { t: 'chunk', id: 1, data: new Uint8Array(1), cp: { next: 5 } } : { t: 'chunk', id: 1, data: new Uint8Array(1) });
    call.seq++;
  }
  assert.ok(canResume(call, false));
  prepareResume(call, 1_000);
  assert.deepEqual(call.env.resume, { from: 5, checkpoint: { next: 5 }, delivered: 7 });
  assert.equal(call.env.deadline, 1_000 + call.timeoutMs);
  // The sibling's start is not the client's: the sink must not hear it again.
  assert.equal(streamStarted(call, { t: 'start', id: 1, resumable: 'checkpoint' }), false);
});

test('a deterministic stream starts over on the sibling, which drops the delivered chunks', () => {
  const call = streamingCall('deterministic');
  call.seq = 3;
  prepareResume(call, 0);
  assert.deepEqual(call.env.resume, { from: 0, delivered: 3 });
});

test('no resume for a stream that is not resumable, while closing, or past the resume limit', () => {
  assert.equal(canResume(streamingCall(undefined), false), false);
  const call = streamingCall('deterministic');
  assert.equal(canResume(call, true), false);
  for (let i = 0; i < MAX_RESUMES; i++) prepareResume(call, 0);
  call.state = 'streaming';
  assert.equal(canResume(call, false), false);
});
