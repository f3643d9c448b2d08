/**
 * Gives memory back after large payloads. V8 collects when JavaScript allocates, but the bytes of
 * large bodies and results live outside the JS heap (ArrayBuffers): a thread that goes quiet
 * after moving a few hundred MB of them may not collect for minutes, and all of it stays resident
 * though nothing refers to it any more (after the 20 MB-bodies chaos case, hundreds of MB of dead
 * buffers in the gateway's thread, all freed by one collection). So each thread that carries large
 * payloads (the gateway's, each replica's) counts them, and once RECLAIM_AFTER_BYTES have passed
 * and none has come for QUIET_MS, it runs one full collection.
 *
 * The collection is V8's own `gc`, exposed by setting V8's flag at run time (the flag only makes
 * the function available; it changes nothing else). Where that is refused, nothing is collected
 * early and V8's own schedule applies.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Large payload bytes a thread must have carried before a quiet spell triggers a collection. */
export const RECLAIM_AFTER_BYTES = 64 * 1024 * 1024;
/** How long no large payload must have come before the collection. */
export const QUIET_MS = 1_000;

export interface ReclaimState {
  /** Large payload bytes carried since the last collection. */
  pendingBytes: number;
  /** When the last large payload came (ms, the injected clock). */
  lastLargeAt: number;
}

/** Collect now (`collect`), or look again in `waitMs` (undefined: nothing to wait for). */
export function reclaimDecision(state: ReclaimState, now: number, afterBytes = RECLAIM_AFTER_BYTES, quietMs = QUIET_MS): { collect: boolean; waitMs?: number } {
  if (state.pendingBytes < afterBytes) return { collect: false };
  const quietFor = now - state.lastLargeAt;
  return quietFor >= quietMs ? { collect: true } : { collect: false, waitMs: quietMs - quietFor };
}

function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** One per thread: counts large payloads and collects after a quiet spell. */
export class MemoryReclaimer {
  private readonly state: ReclaimState = { pendingBytes: 0, lastLargeAt: 0 };
  private timer: NodeJS.Timeout | undefined;
  /** Collections run so far (for tests and diagnostics). */
  collections = 0;

  constructor(
    private readonly collect: (() => void) | undefined = exposeGc(),
    private readonly now: () => number = () => performance.now(),
    private readonly afterBytes = RECLAIM_AFTER_BYTES,
    private readonly quietMs = QUIET_MS,
  ) {}

  /** A large payload of `bytes` passed through this thread. */
  note(bytes: number): void {
    if (!this.collect) return;
    this.state.pendingBytes += bytes;
    this.state.lastLargeAt = this.now();
    if (this.timer === undefined && this.state.pendingBytes >= this.afterBytes) this.arm(this.quietMs);
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.check, ms);
    // Never keeps a process or thread alive by itself.
    this.timer.unref();
  }

  private readonly check = (): void => {
    this.timer = undefined;
    const decision = reclaimDecision(this.state, this.now(), this.afterBytes, this.quietMs);
    if (decision.collect) {
      this.state.pendingBytes = 0;
      this.collections++;
      this.collect!();
    } else if (decision.waitMs !== undefined) {
      this.arm(decision.waitMs);
    }
  };
}

let threadReclaimer: MemoryReclaimer | undefined;

/** A large payload of `bytes` passed through this thread (its reclaimer starts on first use). */
export function noteLargePayload(bytes: number): void {
  (threadReclaimer ??= new MemoryReclaimer()).note(bytes);
}
