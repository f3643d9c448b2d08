/**
 * The loop that applies the scale policy to one endpoint: read its signals, keep their history,
 * ask the policy, and tell the endpoint the count it should have. The endpoint starts and drains
 * replicas itself; this loop holds no replica logic and decides nothing on its own.
 *
 * `scaleTo` is a target, not a delta, and is not awaited. The endpoint counts a replica it is
 * starting as `starting` and one it is draining as `draining` from the moment it is asked, so the
 * next tick sees the request already applied (current = ready + starting). For an endpoint that
 * catches up later (a remote placement), the controller treats its last request as the current
 * count until the endpoint reaches it or a window passes, so a stale reading cannot start a
 * second, contrary request.
 */
import type { AutoscalingConfig } from '../config/schema.js';
import { decideReplicas, INITIAL_POLICY_STATE, type DecisionReason, type PolicyState } from './policy.js';
import { SignalHistory, type ReplicaCounts, type ScalingSignals } from './signals.js';

export interface ScalableEndpoint {
  readonly name: string;
  readonly autoscaling: AutoscalingConfig;
  /** Cumulative counters and replica counts as of now; called once a tick. */
  signals(): ScalingSignals;
  /** Start or drain replicas until ready + starting equals `desired`; must not throw for a count within the knobs' bounds. */
  scaleTo(desired: number, reason: string): void;
}

export interface ObservedLoad {
  readonly avgConcurrency: number;
  readonly panicConcurrency: number;
  readonly qps: number;
}

export interface DecisionRecord {
  /** When the decision was taken, on the controller's clock (wall time by default). */
  readonly at: number;
  readonly observed: ObservedLoad;
  readonly current: number;
  readonly desired: number;
  readonly reason: DecisionReason;
  readonly detail: string;
  /** Whether this decision called `scaleTo`. */
  readonly applied: boolean;
}

export interface AutoscalerState {
  readonly endpoint: string;
  readonly running: boolean;
  readonly tickMs: number;
  readonly replicas: ReplicaCounts | null;
  readonly panicking: boolean;
  /** A pending scale-down: since when (tracker ms) and to how many. */
  readonly pendingDown: { readonly since: number; readonly to: number } | null;
  readonly pendingUp: { readonly since: number; readonly to: number } | null;
  /** The last count asked of the endpoint that it has not reached yet. */
  readonly requested: { readonly desired: number; readonly at: number } | null;
  readonly last: DecisionRecord | null;
}

export interface AutoscaleControllerOptions {
  /** Stamps decision records (default Date.now); the policy itself runs on the signals' clock. */
  readonly clock?: () => number;
  /** Called with each decision that is recorded. */
  readonly log?: (decision: DecisionRecord) => void;
  /** Called when a timer tick throws (signals() or scaleTo() failed); default: a process warning. */
  readonly onError?: (err: unknown) => void;
  /** How many decision records to keep (default 100). */
  readonly keepDecisions?: number;
}

export class AutoscaleController {
  private readonly endpoint: ScalableEndpoint;
  private readonly clock: () => number;
  private readonly log: ((decision: DecisionRecord) => void) | undefined;
  private readonly onError: (err: unknown) => void;
  private readonly keepDecisions: number;
  private readonly history: SignalHistory;
  private readonly records: DecisionRecord[] = [];
  private policyState: PolicyState = INITIAL_POLICY_STATE;
  private lastSignals: ScalingSignals | null = null;
  private requested: { desired: number; at: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tickMs: number;
  private ticking = false;

  constructor(endpoint: ScalableEndpoint, options: AutoscaleControllerOptions = {}) {
    const keep = options.keepDecisions ?? 100;
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`options.keepDecisions must be a positive integer, got ${keep}`);
    this.endpoint = endpoint;
    this.clock = options.clock ?? Date.now;
    this.log = options.log;
    this.onError = options.onError ?? ((err) => process.emitWarning(`autoscaler for endpoint "${endpoint.name}": ${String(err)}`));
    this.keepDecisions = keep;
    const knobs = endpoint.autoscaling;
    this.tickMs = knobs.tick_ms;
    this.history = SignalHistory.covering(Math.max(knobs.window_size_secs, knobs.panic_window_secs) * 1000, knobs.tick_ms);
  }

  /** Ticks once now (so the history starts) and then every `tick_ms`; the timer never keeps the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.tickMs = this.endpoint.autoscaling.tick_ms;
    this.timer = setInterval(() => this.guardedTick(), this.tickMs);
    this.timer.unref();
    this.guardedTick();
  }

  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * One decision, now. The endpoint calls this when a request arrives with no replica, so scale
   * from zero does not wait for the next tick. A call from inside a tick (an endpoint that reacts
   * to scaleTo synchronously) is ignored and returns undefined. Errors from the endpoint propagate.
   */
  tickNow(): DecisionRecord | undefined {
    if (this.ticking) return undefined;
    this.ticking = true;
    try {
      return this.tick();
    } finally {
      this.ticking = false;
    }
  }

  /** The recorded decisions, oldest first. A run of identical ones (same current, desired, reason) keeps only its first. */
  decisions(): DecisionRecord[] {
    return this.records.slice();
  }

  state(): AutoscalerState {
    const s = this.policyState;
    return {
      endpoint: this.endpoint.name,
      running: this.timer !== null,
      tickMs: this.tickMs,
      replicas: this.lastSignals === null ? null : { ...this.lastSignals.replicas },
      panicking: s.panicUntil !== null,
      pendingDown: s.downSince === null ? null : { since: s.downSince, to: s.downTarget },
      pendingUp: s.upSince === null ? null : { since: s.upSince, to: s.upTarget },
      requested: this.requested === null ? null : { ...this.requested },
      last: this.records.at(-1) ?? null,
    };
  }

  private guardedTick(): void {
    try {
      this.tickNow();
    } catch (err) {
      this.onError(err);
    }
  }

  private tick(): DecisionRecord {
    const knobs = this.endpoint.autoscaling;
    const signals = this.endpoint.signals();
    this.lastSignals = signals;
    this.history.push(signals);
    const now = signals.now;
    const windowMs = knobs.window_size_secs * 1000;
    const observed: ObservedLoad = {
      avgConcurrency: this.history.averageConcurrency(windowMs, now),
      panicConcurrency: this.history.averageConcurrency(knobs.panic_window_secs * 1000, now),
      qps: this.history.qps(windowMs, now),
    };
    const current = this.currentReplicas(signals.replicas.ready + signals.replicas.starting, now, windowMs);
    const decision = decideReplicas({
      now,
      knobs,
      ...observed,
      instantConcurrency: signals.inFlight + signals.queued,
      current,
      state: this.policyState,
    });
    this.policyState = decision.state;

    const applied = decision.desired !== current;
    if (applied) {
      this.requested = { desired: decision.desired, at: now };
      this.endpoint.scaleTo(decision.desired, decision.reason);
    }
    const record: DecisionRecord = {
      at: this.clock(),
      observed,
      current,
      desired: decision.desired,
      reason: decision.reason,
      detail: decision.detail,
      applied,
    };
    this.record(record);
    return record;
  }

  /**
   * ready + starting, except while the endpoint has not yet caught up with the last request
   * (for at most one window): then the request stands for the count, so the policy does not
   * decide against a reading that predates it.
   */
  private currentReplicas(observed: number, now: number, settleMs: number): number {
    const req = this.requested;
    if (req !== null && observed !== req.desired && now - req.at < settleMs) return req.desired;
    this.requested = null;
    return observed;
  }

  private record(record: DecisionRecord): void {
    const last = this.records[this.records.length - 1];
    const repeat =
      last !== undefined && !record.applied && last.current === record.current && last.desired === record.desired && last.reason === record.reason;
    if (repeat) return;
    this.records.push(record);
    if (this.records.length > this.keepDecisions) this.records.shift();
    this.log?.(record);
  }
}
