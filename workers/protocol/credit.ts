/**
 * Stream credit: the flow control of a stream, on every hop. A replica sends at most `credit`
 * chunks of a stream (the request's `credit`, else DEFAULT_STREAM_CREDIT) ahead of what the client
 * took. The gateway counts chunks handed to the client and chunks it took; what the client took
 * in one event-loop turn goes back to the replica at the end of that turn, for every stream of
 * the replica in one `credits` message. So a slow reader pauses the generator feeding it, and a
 * fast one costs one control message per turn, not one per chunk.
 */

export const DEFAULT_STREAM_CREDIT = 64;

/** The gateway's count for one stream. */
export interface CreditCount {
  /** Chunks handed to the client and not yet taken by it. */
  unacked: number;
  /** Chunks taken whose credit has not been returned to the replica yet. */
  acked: number;
}

/** `n` chunks left the replica for the client; true when the replica has now spent its credit (it waits for the client). */
export function chunksSent(count: CreditCount, n: number, credit: number | undefined): boolean {
  count.unacked += n;
  return count.unacked + count.acked >= (credit ?? DEFAULT_STREAM_CREDIT);
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
  return n;
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

  /**
   * Spends the credit of one chunk. Undefined while credit is left (no await, no microtask per
   * chunk); with none left, a promise that resolves once credit comes or `signal` aborts (an
   * AbortSignal, or anything with `aborted`).
   */
  spend(signal: { readonly aborted: boolean }): Promise<void> | undefined {
    this.left -= 1;
    if (this.left > 0 || signal.aborted) return undefined;
    return this.refill(signal);
  }

  private async refill(signal: { readonly aborted: boolean }): Promise<void> {
    while (this.left <= 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
