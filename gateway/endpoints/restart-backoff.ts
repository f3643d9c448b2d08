/**
 * When an endpoint may start its next replica. Failed starts back off exponentially until one
 * succeeds. Plain data and an injected clock, so the schedule is testable without threads.
 */
export const START_BACKOFF_BASE_MS = 250;
export const MAX_START_BACKOFF_MS = 30_000;

/** Delay after the `failures`-th consecutive failed start: 0.5 s, 1 s, 2 s, ... capped at 30 s. */
export function startBackoffMs(failures: number): number {
  return failures <= 0 ? 0 : Math.min(MAX_START_BACKOFF_MS, START_BACKOFF_BASE_MS * 2 ** failures);
}

export class RestartBackoff {
  private failures = 0;
  private notBefore = 0;

  constructor(private readonly now: () => number) {}

  /** A replica failed to start. */
  startFailed(): void {
    this.failures++;
    this.notBefore = this.now() + startBackoffMs(this.failures);
  }

  /** A replica started: the next failure backs off from the beginning again. */
  started(): void {
    this.failures = 0;
  }

  /** Milliseconds until a start may be attempted (0: now). */
  waitMs(): number {
    return Math.max(0, this.notBefore - this.now());
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
