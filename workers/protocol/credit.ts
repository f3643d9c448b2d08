/**
 * Stream credit: the flow control of a stream, on every hop. A replica runs ahead of what the
 * client took by at most `credit` chunks (the request's `credit`, else DEFAULT_STREAM_CREDIT) and
 * at most STREAM_CREDIT_BYTES bytes, whichever it reaches first (one chunk always goes, however
 * large). Credit is returned in chunks; both sides know which chunks, because a stream's chunks are
 * taken, and so credited, in the order they were sent: each side keeps their sizes (BytesInFlight)
 * and applies the same rule, so the gateway knows exactly when the replica waits.
 *
 * The gateway counts chunks handed to the client and chunks it took; what the client took in one
 * event-loop turn goes back to the replica at the end of that turn, for every stream of the replica
 * in one `credits` message. So a slow reader pauses the generator feeding it, and a fast one costs
 * one control message per turn, not one per chunk.
 */

/** Chunks a stream may run ahead of its client: many small ones (tokens) cross in one turn. */
export const DEFAULT_STREAM_CREDIT = 256;
/** Bytes a stream may run ahead of its client: what bounds the memory a reader that stops can cost. */
export const STREAM_CREDIT_BYTES = 256 * 1024;

/** The sizes of the chunks sent and not yet credited, oldest first, and their sum. */
export class BytesInFlight {
  private sizes: number[] = [];
  private head = 0;
  bytes = 0;

  sent(size: number): void {
    this.sizes.push(size);
    this.bytes += size;
  }

  /** The oldest `n` chunks were credited (a peer that credits more than it was sent frees only what it has). */
  credited(n: number): void {
    const end = Math.min(this.head + n, this.sizes.length);
    for (let i = this.head; i < end; i++) this.bytes -= this.sizes[i]!;
    this.head = end;
    if (this.head === this.sizes.length) {
      this.sizes = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.sizes.length) {
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}

/** The gateway's count for one stream. */
export interface CreditCount {
  /** Chunks handed to the client and not yet taken by it. */
  unacked: number;
  /** Chunks taken whose credit has not been returned to the replica yet. */
  acked: number;
  /** The chunks of both, by size. */
  readonly inFlight: BytesInFlight;
}

/**
 * A run of chunks (`bytes` in all, each of `sizes`, or one) left the replica for the client; true
 * when the replica has now spent its credit, in chunks or in bytes (it waits for the client).
 */
export function chunksSent(count: CreditCount, run: { readonly bytes: number; readonly sizes?: readonly number[] | undefined }, credit: number | undefined): boolean {
  const sizes = run.sizes;
  if (sizes === undefined) {
    count.unacked += 1;
    count.inFlight.sent(run.bytes);
  } else {
    count.unacked += sizes.length;
    for (const size of sizes) count.inFlight.sent(size);
  }
  return count.unacked + count.acked >= (credit ?? DEFAULT_STREAM_CREDIT) || count.inFlight.bytes >= STREAM_CREDIT_BYTES;
}

/** The client took `n` chunks: their credit is owed to the replica until it is returned. */
export function chunksTaken(count: CreditCount, n: number): void {
  count.unacked -= n;
  count.acked += n;
}

/** The credit owed, now returned: how much it is (0 when none is owed). */
export function creditReturned(count: CreditCount): number {
  const n = count.acked;
  count.acked = 0;
  count.inFlight.credited(n);
  return n;
}

/** The replica's side: a stream's generator waits here once its credit is spent. */
export class CreditGate {
  private left: number;
  private readonly inFlight = new BytesInFlight();
  private wake: (() => void) | undefined;

  constructor(credit: number | undefined) {
    this.left = credit ?? DEFAULT_STREAM_CREDIT;
  }

  grant(n: number): void {
    this.left += n;
    this.inFlight.credited(n);
    this.open();
  }

  /** Wakes a waiting generator without credit: its request was cancelled, and it checks its signal. */
  open(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Spends the credit of one chunk of `size` bytes, just sent. Undefined while credit is left (no
   * await, no microtask per chunk); with none left, a promise that resolves once credit comes or
   * `signal` aborts (an AbortSignal, or anything with `aborted`).
   */
  spend(size: number, signal: { readonly aborted: boolean }): Promise<void> | undefined {
    this.left -= 1;
    this.inFlight.sent(size);
    if (!this.spent() || signal.aborted) return undefined;
    return this.refill(signal);
  }

  private spent(): boolean {
    return this.left <= 0 || this.inFlight.bytes >= STREAM_CREDIT_BYTES;
  }

  private async refill(signal: { readonly aborted: boolean }): Promise<void> {
    while (this.spent() && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
