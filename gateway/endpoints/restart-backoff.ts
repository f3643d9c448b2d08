/**
 * When an endpoint may start its next replica. Failed starts back off exponentially until one
 * succeeds; replica deaths (lost, wedged) back off too once they repeat within a window, so a
 * predictor that kills its thread on every request costs a thread per backoff step, not one per
 * request. Plain data and an injected clock, so the schedule is testable without threads.
 */
export const START_BACKOFF_BASE_MS = 250;
export const MAX_START_BACKOFF_MS = 30_000;
/** Deaths older than this are forgotten. */
export const DEATH_WINDOW_MS = 60_000;
export const DEATH_BACKOFF_BASE_MS = 500;

/** Delay after the `failures`-th consecutive failed start: 0.5 s, 1 s, 2 s, ... capped at 30 s. */
export function startBackoffMs(failures: number): number {
  return failures <= 0 ? 0 : Math.min(MAX_START_BACKOFF_MS, START_BACKOFF_BASE_MS * 2 ** failures);
}

/**
 * Delay before replacing a replica after the `deaths`-th death within the window: the first is
 * replaced at once (one crash is an accident), then 0.5 s, 1 s, 2 s, ... capped at 30 s.
 */
export function deathBackoffMs(deaths: number): number {
  return deaths <= 1 ? 0 : Math.min(MAX_START_BACKOFF_MS, DEATH_BACKOFF_BASE_MS * 2 ** (deaths - 2));
}

export class RestartBackoff {
  private failures = 0;
  private deaths: number[] = [];
  private notBefore = 0;

  constructor(private readonly now: () => number) {}

  /** A replica failed to start. */
  startFailed(): void {
    this.failures++;
    this.holdFor(startBackoffMs(this.failures));
  }

  /** A replica started: the next failed start backs off from the beginning again. */
  started(): void {
    this.failures = 0;
  }

  /** A replica that had started died (its thread or node was lost, or it wedged). */
  died(): void {
    const now = this.now();
    this.deaths = this.deaths.filter((at) => now - at < DEATH_WINDOW_MS);
    this.deaths.push(now);
    this.holdFor(deathBackoffMs(this.deaths.length));
  }

  /** Milliseconds until a start may be attempted (0: now). */
  waitMs(): number {
    return Math.max(0, this.notBefore - this.now());
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  private holdFor(ms: number): void {
    this.notBefore = Math.max(this.notBefore, this.now() + ms);
  }
}
