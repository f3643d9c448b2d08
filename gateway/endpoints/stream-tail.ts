/**
 * The most recent chunks of one stream, kept for a client that reconnects: bounded by bytes (the
 * oldest leave first), asked for everything after a sequence number. The chunks are copies: a
 * chunk from a replica is a view into the whole frame batch it came in, which a reference would
 * keep alive beyond the bound.
 */
import { forEachChunk, type ChunkRun } from '../../workers/protocol/chunk-run.js';

export interface TailChunk {
  readonly seq: number;
  readonly data: Uint8Array;
}

export class StreamTail {
  private chunks: TailChunk[] = [];
  private head = 0;
  bytes = 0;

  constructor(private readonly limitBytes: number) {}

  /** Every chunk of a run, each copied on its own (so the oldest can leave first). */
  pushRun(run: ChunkRun): void {
    forEachChunk(run, (data, seq) => this.push(seq, data));
  }

  push(seq: number, data: Uint8Array): void {
    const copy = Uint8Array.prototype.slice.call(data);
    this.chunks.push({ seq, data: copy });
    this.bytes += copy.byteLength;
    while (this.bytes > this.limitBytes && this.head < this.chunks.length) {
      this.bytes -= this.chunks[this.head]!.data.byteLength;
      this.chunks[this.head++] = undefined as unknown as TailChunk;
    }
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * The chunks after `seq`, given that `last` is the stream's newest; undefined when some of them
   * already left the tail (the client is too far behind to continue).
   */
  after(seq: number, last: number): TailChunk[] | undefined {
    if (seq >= last) return [];
    const first = this.head < this.chunks.length ? this.chunks[this.head]!.seq : last + 1;
    if (first > seq + 1) return undefined;
    return this.chunks.slice(this.head + (seq + 1 - first));
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.bytes = 0;
  }
}
