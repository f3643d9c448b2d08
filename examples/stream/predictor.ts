/**
 * The streaming example, after TensorOpera Deploy's: it answers a question in numbered chunks,
 * one per interval. `{"text": "...", "stream": true}` streams the chunks as they come; without
 * `"stream"` the whole answer comes back at once as JSON.
 *
 * Settings: `interval_ms` (default 1000) and `chunks` (default 5). A request may ask for its own
 * `interval_ms` and `chunks` (at most MAX_CHUNKS), which is how the benchmark asks for a long
 * stream with no pause.
 *
 * Resumable: each chunk carries a checkpoint (the number of the next chunk), so when its replica
 * dies mid-stream a sibling picks up after the last chunk the client got (`req.resumeFrom`),
 * without replaying the pauses before it.
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { CheckpointedChunk, PredictRequest, Predictor, SetupContext } from '../../workers/predictor/api.js';

const MAX_CHUNKS = 1000;

interface Question {
  text: string;
  chunks: number;
  intervalMs: number;
}

function nonNegative(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new SwitchyardError('SY_BAD_REQUEST', `${name} must be a number ≥ 0`);
  return value;
}

function chunkCount(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_CHUNKS) {
    throw new SwitchyardError('SY_BAD_REQUEST', `${name} must be a whole number from 1 to ${MAX_CHUNKS}`);
  }
  return value;
}

/** Resolves after `ms`, or at once when the request is aborted. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms === 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export default class StreamingAnswer implements Predictor {
  readonly resumable = 'checkpoint';
  private intervalMs = 1000;
  private chunks = 5;

  setup(ctx: SetupContext): void {
    this.intervalMs = nonNegative(ctx.settings.interval_ms, 'settings.interval_ms', this.intervalMs);
    this.chunks = chunkCount(ctx.settings.chunks, 'settings.chunks', this.chunks);
  }

  private question(raw: unknown): Question {
    const input = (raw ?? {}) as Record<string, unknown>;
    const text = typeof input.text === 'string' && input.text.length > 0 ? input.text : '[Empty question]';
    return { text, chunks: chunkCount(input.chunks, 'chunks', this.chunks), intervalMs: nonNegative(input.interval_ms, 'interval_ms', this.intervalMs) };
  }

  predict(raw: unknown): { answer: string } {
    const q = this.question(raw);
    let answer = '';
    for (let i = 1; i <= q.chunks; i++) answer += `Answer for ${q.text} is: ${i}\n\n`;
    return { answer };
  }

  async *predictStream(raw: unknown, req: PredictRequest): AsyncGenerator<CheckpointedChunk> {
    const q = this.question(raw);
    const first = req.resumeFrom ? (req.resumeFrom.checkpoint as { next: number }).next : 1;
    for (let i = first; i <= q.chunks && !req.signal.aborted; i++) {
      yield { chunk: `Answer for ${q.text} is: ${i}\n\n`, checkpoint: { next: i + 1 } };
      if (i < q.chunks) await pause(q.intervalMs, req.signal);
    }
  }
}
