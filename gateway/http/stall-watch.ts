/**
 * Finds responses whose client stopped reading. A transport registers a response while it has
 * bytes the client has not taken; each time the client takes some, the response reports progress.
 * One shared timer (not one per response) looks for those without progress for the stall
 * timeout and tells them; they cancel their work, which frees the replica slot they held.
 *
 * The verdict is a pure function of the last progress time and the clock, so a fake clock tests it.
 */

export interface Stallable {
  /** When the client last took bytes while some were waiting (clock ms). */
  readonly lastProgressAt: number;
  /** No progress for the stall timeout: give up on the client. */
  onStalled(): void;
}

export function isStalled(lastProgressAt: number, now: number, stallTimeoutMs: number): boolean {
  return now - lastProgressAt >= stallTimeoutMs;
}

export class StallWatch {
  private readonly watched = new Set<Stallable>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly stallTimeoutMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  now(): number {
    return this.clock();
  }

  /** Starts watching (idempotent). */
  watch(item: Stallable): void {
    this.watched.add(item);
    if (!this.timer) {
      // A quarter of the timeout: a stalled client is found within 1.25× the timeout.
      this.timer = setInterval(() => this.sweep(), Math.max(25, Math.floor(this.stallTimeoutMs / 4)));
      this.timer.unref();
    }
  }

  unwatch(item: Stallable): void {
    this.watched.delete(item);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    return this.watched.size;
  }

  sweep(): void {
    const now = this.clock();
    for (const item of [...this.watched]) {
      if (!isStalled(item.lastProgressAt, now, this.stallTimeoutMs)) continue;
      this.unwatch(item);
      item.onStalled();
    }
  }

  close(): void {
    this.watched.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
