/**
 * A run: the consecutive chunks of one stream that a replica produced in one turn of its event
 * loop, carried as one `chunk` frame with their bytes back to back and each chunk's size. A fast
 * generator then costs one frame, one credit return and one socket write per turn instead of one
 * per chunk; a lone chunk is a run of one and leaves when its turn ends, as it always did. Chunk
 * boundaries and sequence numbers survive: sinks that frame each chunk (SSE, NDJSON, WebSocket
 * messages) still see every one.
 */
import { isAscii } from 'node:buffer';

/**
 * A run stops growing at this many bytes; the next chunk starts another. Small chunks are where
 * the per-chunk costs are; a large one gains nothing from sharing a frame and would only be copied.
 */
export const RUN_MAX_BYTES = 64 * 1024;

/** Chunks of one stream as a sink receives them, numbered from `firstSeq`. */
export interface ChunkRun {
  /** The chunks' bytes, back to back. */
  readonly bytes: Uint8Array;
  /** Each chunk's byte length, in order; undefined when the run is one chunk. */
  readonly sizes: readonly number[] | undefined;
  /** The seq of the first chunk; the others follow one by one. */
  readonly firstSeq: number;
}

/** How many chunks the run holds. */
export function runLength(run: { readonly sizes?: readonly number[] | undefined }): number {
  return run.sizes === undefined ? 1 : run.sizes.length;
}

/** Calls `fn` with each chunk of the run (a view into `run.bytes`) and its seq, in order. */
export function forEachChunk(run: ChunkRun, fn: (bytes: Uint8Array, seq: number) => void): void {
  const { bytes, sizes } = run;
  if (sizes === undefined) {
    fn(bytes, run.firstSeq);
    return;
  }
  let at = 0;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]!;
    fn(bytes.subarray(at, at + size), run.firstSeq + i);
    at += size;
  }
}

/**
 * The chunks of a run as text when the whole run is ASCII: one check and one decode for the run
 * instead of a view, a check and a decode per chunk (byte offsets are character offsets then).
 * Undefined otherwise (or for a run of one): decode chunk by chunk.
 */
export function asciiChunks(run: ChunkRun): string[] | undefined {
  const { bytes, sizes } = run;
  if (sizes === undefined || !isAscii(bytes)) return undefined;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const out = new Array<string>(sizes.length);
  let at = 0;
  for (let i = 0; i < sizes.length; i++) {
    const end = at + sizes[i]!;
    out[i] = text.slice(at, end);
    at = end;
  }
  return out;
}

/** One run made of separate chunks (a replay from a stream's tail): their bytes joined once. */
export function joinChunks(chunks: readonly Uint8Array[], firstSeq: number): ChunkRun {
  if (chunks.length === 1) return { bytes: chunks[0]!, sizes: undefined, firstSeq };
  const sizes = chunks.map((c) => c.byteLength);
  const bytes = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return { bytes, sizes, firstSeq };
}
