/**
 * Time as the endpoint runtime sees it, injected so unit tests drive it: a monotonic clock for
 * durations (latency, the concurrency integral), wall time for deadlines (they cross threads and
 * machines as epoch ms), and one-shot timers.
 */
import { performance } from 'node:perf_hooks';

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (performance.now()). */
  now(): number;
  /** Epoch milliseconds (Date.now()). */
  wallMs(): number;
  /** Runs `fn` once after `ms`; the timer never keeps the process alive. */
  schedule(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  schedule(fn, ms) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
