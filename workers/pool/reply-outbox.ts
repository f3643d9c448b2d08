/**
 * The frames a replica produces in one turn of its event loop, delivered together at the start of
 * the next (setImmediate, as TurnBatcher: one message per turn). The chunks a stream yields within
 * the turn join into runs (workers/protocol/chunk-run.ts): one frame, bytes back to back, up to
 * RUN_MAX_BYTES each. Nothing waits for a later chunk: a run leaves with its turn, however short.
 *
 * Order per request is kept: a frame other than a chunk (end, error) closes the request's run, so
 * chunks after it (none, in practice) start a new one behind it.
 */
import { RUN_MAX_BYTES } from '../protocol/chunk-run.js';
import type { ReplyFrame } from '../protocol/envelopes.js';

type ChunkFrame = Extract<ReplyFrame, { t: 'chunk' }>;

/**
 * A run still filling. Text is written into the run's buffer as it is yielded, so the strings die
 * young: a fast generator yields thousands of chunks per turn, and holding them to the end of the
 * turn made every garbage collection in between copy them. A first chunk of bytes is kept as it
 * is (a large chunk is never copied) until a second one joins it.
 */
interface OpenRun {
  readonly frame: ChunkFrame;
  /** The run's one chunk so far, when it came as bytes. */
  only: Uint8Array | undefined;
  buf: Buffer | undefined;
  bytes: number;
  readonly sizes: number[];
  /** The latest checkpoint and the index of its chunk in the run. */
  cp: unknown;
  cpAt: number;
}

export class ReplyOutbox {
  private frames: ReplyFrame[] = [];
  /** Runs of this turn, in the order they were opened. */
  private runs: OpenRun[] = [];
  /** The run each stream appends to now; a non-chunk frame for the stream closes it. */
  private readonly open = new Map<number, OpenRun>();
  private scheduled = false;

  constructor(private readonly deliver: (frames: ReplyFrame[]) => void) {}

  push(frame: ReplyFrame): void {
    this.open.delete(frame.id);
    this.frames.push(frame);
    this.schedule();
  }

  /** A chunk of stream `id`: a string (written as UTF-8) or bytes; `checkpoint` when the predictor gave one. Returns its size in bytes. */
  chunk(id: number, data: string | Uint8Array, checkpoint: unknown): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: the exact size is measured only near the limit.
    const bound = typeof data === 'string' ? data.length * 3 : data.byteLength;
    let run = this.open.get(id);
    if (run !== undefined && run.bytes + bound > RUN_MAX_BYTES && run.bytes + (typeof data === 'string' ? Buffer.byteLength(data) : bound) > RUN_MAX_BYTES) {
      run = undefined;
    }
    if (run === undefined) {
      run = { frame: { t: 'chunk', id, data: EMPTY }, only: undefined, buf: undefined, bytes: 0, sizes: [], cp: undefined, cpAt: -1 };
      this.open.set(id, run);
      this.runs.push(run);
      this.frames.push(run.frame);
      this.schedule();
    }
    if (run.sizes.length === 0 && typeof data !== 'string') {
      run.only = data;
      run.bytes = data.byteLength;
      run.sizes.push(data.byteLength);
    } else {
      append(run, data, bound);
    }
    if (checkpoint !== undefined) {
      run.cp = checkpoint;
      run.cpAt = run.sizes.length - 1;
    }
    return run.sizes[run.sizes.length - 1]!;
  }

  /** Delivers what is waiting now (before the thread stops, say) instead of in the next turn. */
  readonly flush = (): void => {
    this.scheduled = false;
    const frames = this.frames;
    if (frames.length === 0) return;
    for (const run of this.runs) close(run);
    this.frames = [];
    this.runs = [];
    this.open.clear();
    this.deliver(frames);
  };

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }
}

const EMPTY = new Uint8Array(0);

/** Writes a chunk at the end of the run's buffer, growing it (at least doubling) when `bound` bytes might not fit. */
function append(run: OpenRun, data: string | Uint8Array, bound: number): void {
  const only = run.only;
  run.only = undefined;
  const used = run.bytes;
  if (run.buf === undefined || run.buf.length < used + bound) {
    const grown = Buffer.allocUnsafe(Math.max(MIN_BUFFER, 2 * used, used + bound));
    if (only !== undefined) grown.set(only, 0);
    else if (run.buf !== undefined) run.buf.copy(grown, 0, 0, used);
    run.buf = grown;
  } else if (only !== undefined) {
    run.buf.set(only, 0);
  }
  let size: number;
  if (typeof data === 'string') {
    size = run.buf.write(data, used);
  } else {
    run.buf.set(data, used);
    size = data.byteLength;
  }
  run.bytes = used + size;
  run.sizes.push(size);
}

const MIN_BUFFER = 1024;

/** Fills the run's frame: one chunk as it is, several as the buffer they were written into, with their sizes. */
function close(run: OpenRun): void {
  const { frame, sizes } = run;
  frame.data = run.only ?? run.buf!.subarray(0, run.bytes);
  if (sizes.length > 1) frame.sizes = sizes;
  if (run.cpAt >= 0) {
    frame.cp = run.cp;
    if (run.cpAt !== sizes.length - 1) frame.cpAt = run.cpAt;
  }
}
