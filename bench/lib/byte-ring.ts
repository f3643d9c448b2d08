/**
 * A single-producer, single-consumer ring of byte records in a SharedArrayBuffer, woken with
 * Atomics: the SharedArrayBuffer alternative to a MessagePort that bench/handoff.ts measures.
 *
 * The producer owns the write offset and the consumer the read offset (plain locals, each on its
 * own thread); the shared words are the bytes in use and a wake-up sequence. A consumer about to
 * sleep raises `waiting`, re-checks for bytes and then waits on `seq`; a producer that sees
 * `waiting` bumps `seq` and notifies, so a write never goes unseen and a busy consumer costs the
 * producer no notify.
 */
const USED = 0;
const SEQ = 1;
const WAITING = 2;
const CONTROL_WORDS = 4;
/** Atomics.waitAsync (V8, Node ≥ 16) is in TypeScript's ES2024 lib; this project compiles against ES2023. */
type WaitAsync = (array: Int32Array, index: number, value: number) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** A record header whose length is this marks the end of the buffer: the next record starts at 0. */
const WRAP = -1;

export interface RingBuffers {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export function createRing(capacityBytes: number): RingBuffers {
  if (!Number.isInteger(capacityBytes) || capacityBytes <= 0 || capacityBytes % 4 !== 0) {
    throw new RangeError(`capacityBytes must be a positive multiple of 4 (got ${capacityBytes})`);
  }
  return { control: new SharedArrayBuffer(CONTROL_WORDS * 4), data: new SharedArrayBuffer(capacityBytes) };
}

const align4 = (n: number): number => (n + 3) & ~3;

/** What both ends of a ring hold: the shared words and bytes, and their own position in them. */
abstract class RingEnd {
  protected readonly control: Int32Array;
  protected readonly bytes: Uint8Array;
  protected readonly words: Int32Array;
  protected offset = 0;

  constructor(buffers: RingBuffers) {
    this.control = new Int32Array(buffers.control);
    this.bytes = new Uint8Array(buffers.data);
    this.words = new Int32Array(buffers.data);
  }
}

export class RingWriter extends RingEnd {

  /** Appends one record; false when the ring has no room for it now. */
  write(record: Uint8Array): boolean {
    const capacity = this.bytes.byteLength;
    const need = 4 + align4(record.byteLength);
    const tail = capacity - this.offset;
    const pad = tail < need ? tail : 0;
    if (Atomics.load(this.control, USED) + pad + need > capacity) return false;
    if (pad > 0) {
      this.words[this.offset >> 2] = WRAP;
      this.offset = 0;
    }
    this.words[this.offset >> 2] = record.byteLength;
    this.bytes.set(record, this.offset + 4);
    this.offset = (this.offset + need) % capacity;
    Atomics.add(this.control, USED, pad + need);
    if (Atomics.load(this.control, WAITING) === 1) {
      Atomics.store(this.control, WAITING, 0);
      Atomics.add(this.control, SEQ, 1);
      Atomics.notify(this.control, SEQ);
    }
    return true;
  }
}

export class RingReader extends RingEnd {

  get pending(): boolean {
    return Atomics.load(this.control, USED) > 0;
  }

  /** Hands every waiting record to `onRecord` (a view into the ring, valid only during the call). */
  drain(onRecord: (record: Uint8Array) => void): number {
    let count = 0;
    while (Atomics.load(this.control, USED) > 0) {
      let length = this.words[this.offset >> 2]!;
      let freed = 0;
      if (length === WRAP) {
        freed = this.bytes.byteLength - this.offset;
        this.offset = 0;
        length = this.words[0]!;
      }
      onRecord(this.bytes.subarray(this.offset + 4, this.offset + 4 + length));
      const need = 4 + align4(length);
      this.offset = (this.offset + need) % this.bytes.byteLength;
      Atomics.sub(this.control, USED, freed + need);
      count++;
    }
    return count;
  }

  /**
   * Announces that this side is about to sleep and returns the sequence to wait on, or undefined
   * when records arrived meanwhile (drain again instead of sleeping).
   */
  prepareToSleep(): number | undefined {
    const seq = Atomics.load(this.control, SEQ);
    Atomics.store(this.control, WAITING, 1);
    if (Atomics.load(this.control, USED) > 0) {
      Atomics.store(this.control, WAITING, 0);
      return undefined;
    }
    return seq;
  }

  /** Sleeps this thread (blocking its event loop) until a write. */
  sleep(): void {
    const seq = this.prepareToSleep();
    if (seq !== undefined) Atomics.wait(this.control, SEQ, seq);
  }

  /** Resolves after a write, leaving the event loop free meanwhile. */
  sleepAsync(): Promise<unknown> | undefined {
    const seq = this.prepareToSleep();
    if (seq === undefined) return undefined;
    const waited = waitAsync(this.control, SEQ, seq);
    return waited.async ? waited.value : undefined;
  }
}
