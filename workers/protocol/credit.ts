/**
 * Stream credit: the flow control of a stream, on every hop. A replica sends at most `credit`
 * chunks of a stream (the request's `credit`, else DEFAULT_STREAM_CREDIT) ahead of what the client
 * took; the gateway gives credit back in batches of STREAM_CREDIT_BATCH chunks, by a `credit`
 * control message, as the client takes chunks. So a slow reader pauses the generator feeding it.
 */

export const DEFAULT_STREAM_CREDIT = 16;
/** Chunks acknowledged per credit message sent back to a replica. */
export const STREAM_CREDIT_BATCH = 4;

/** The gateway's count for one stream. */
export interface CreditCount {
  /** Chunks handed to the client and not yet taken by it. */
  unacked: number;
  /** Chunks taken since credit was last returned to the replica. */
  acked: number;
}

/** A chunk left the replica for the client; true when the replica has now spent its credit (it waits for the client). */
export function chunkSent(count: CreditCount, credit: number | undefined): boolean {
  count.unacked++;
  return count.unacked + count.acked >= (credit ?? DEFAULT_STREAM_CREDIT);
}

/** The client took a chunk; the credit to return now: a batch, or 0 while one is filling. */
export function chunkTaken(count: CreditCount): number {
  count.unacked--;
  if (++count.acked < STREAM_CREDIT_BATCH) return 0;
  count.acked = 0;
  return STREAM_CREDIT_BATCH;
}

/** The replica's side: a stream's generator waits here once its credit is spent. */
export class CreditGate {
  private left: number;
  private wake: (() => void) | undefined;

  constructor(credit: number | undefined) {
    this.left = credit ?? DEFAULT_STREAM_CREDIT;
  }

  grant(n: number): void {
    this.left += n;
    this.open();
  }

  /** Wakes a waiting generator without credit: its request was cancelled, and it checks its signal. */
  open(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Spends the credit of one chunk; with none left, waits until credit comes or `signal` aborts (an AbortSignal, or anything with `aborted`). */
  async spend(signal: { readonly aborted: boolean }): Promise<void> {
    this.left -= 1;
    while (this.left <= 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
