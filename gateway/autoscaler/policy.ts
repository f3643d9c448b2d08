/**
 * The scale decision: a pure function from what was observed (window averages, the replica
 * count, the previous state) to a desired replica count and the next state. The clock comes in
 * through `ctx.now`; nothing here reads time or keeps memory of its own.
 *
 * Semantics, after Ray Serve and Knative, with what TensorOpera Deploy lacks:
 * - desired = ceil(window concurrency / target per replica), or the QPS equivalent when
 *   `target_qps_per_replica` is set (the larger wins); jumps any number of replicas at once.
 * - Scale-down waits until a lower count has been wanted for `scaledown_delay_secs`, and then goes
 *   only as low as the highest count wanted during that time, so a brief dip never drains.
 *   Scale-up waits `upscale_delay_secs` likewise (0: at once) and goes as high as the lowest count
 *   wanted during that time.
 * - Panic: short-window concurrency ≥ panic_threshold × target × replicas scales up at once and
 *   blocks scale-down until the condition has been absent for a whole stable window.
 * - From zero: any concurrency with no replicas starts enough replicas at once, skipping delays.
 * - The result is always within [min_replicas, max_replicas].
 */
import type { AutoscalingConfig } from '../config/schema.js';

export type DecisionReason =
  /** Demand matches the current count (or sits below it at the min_replicas floor). */
  | 'steady'
  | 'scale_up'
  /** Panic mode: scaled up at once on the short window, or holding (no scale-down) while it lasts. */
  | 'panic'
  | 'scale_down'
  | 'scale_from_zero'
  /** Fewer replicas are wanted but the scale-down delay has not yet passed. */
  | 'delayed_down'
  /** More replicas are wanted but the upscale delay has not yet passed. */
  | 'delayed_up'
  /** The count moves only to get back into [min, max], or demand exceeds max_replicas. */
  | 'bounds';

export interface PolicyState {
  /** Since when (ms) a count above the current one has been wanted; null when not. */
  readonly upSince: number | null;
  /** The lowest count wanted since `upSince`: what demand sustained for the whole delay. */
  readonly upTarget: number;
  /** Since when (ms) a count below the current one has been wanted; null when not. */
  readonly downSince: number | null;
  /** The highest count wanted over the last `scaledown_delay_secs`: scale-down never undercuts any moment of it. */
  readonly downTarget: number;
  /**
   * The counts wanted over the last `scaledown_delay_secs`, as a monotonic queue ([time, count],
   * counts strictly falling): its head is the sliding maximum. Once the lower demand has held for
   * the delay, each lower count is reached as soon as it has held that long, not a delay later.
   */
  readonly downWindow: ReadonlyArray<readonly [number, number]>;
  /** Panic mode lasts until this time (ms); null when calm. */
  readonly panicUntil: number | null;
}

export const INITIAL_POLICY_STATE: PolicyState = Object.freeze({
  upSince: null,
  upTarget: 0,
  downSince: null,
  downTarget: 0,
  downWindow: [],
  panicUntil: null,
});

export interface PolicyContext {
  /** Milliseconds on the tracker's monotonic clock. */
  readonly now: number;
  readonly knobs: AutoscalingConfig;
  /** Mean in-flight + queued requests over `window_size_secs`. */
  readonly avgConcurrency: number;
  /** Mean in-flight + queued requests over `panic_window_secs`. */
  readonly panicConcurrency: number;
  /** In-flight + queued right now: a request that just arrived at zero replicas has no window weight yet. */
  readonly instantConcurrency: number;
  /** Admitted requests per second over `window_size_secs`. */
  readonly qps: number;
  /** Replicas serving or about to (ready + starting; draining ones excluded). */
  readonly current: number;
  readonly state: PolicyState;
}

export interface Decision {
  readonly desired: number;
  readonly reason: DecisionReason;
  /** One line for the decision log: the numbers behind the reason. */
  readonly detail: string;
  readonly state: PolicyState;
}

/** Guards ceil() against float residue from window averages (8.000000001 / 4 must stay 2). */
const EPSILON = 1e-9;

/** Replicas needed to keep `load` at or under `perReplica` each. */
export function replicasFor(load: number, perReplica: number): number {
  return load > 0 ? Math.ceil(load / perReplica - EPSILON) : 0;
}

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2));

export function decideReplicas(ctx: PolicyContext): Decision {
  const { now, knobs, current, state } = ctx;
  const target = knobs.target_concurrency_per_replica;
  const clamp = (n: number): number => Math.min(knobs.max_replicas, Math.max(knobs.min_replicas, n));
  const stableMs = knobs.window_size_secs * 1000;

  const byConcurrency = replicasFor(ctx.avgConcurrency, target);
  const byQps = knobs.target_qps_per_replica === undefined ? 0 : replicasFor(ctx.qps, knobs.target_qps_per_replica);
  // A request in flight or waiting needs a replica even before it weighs on the window average
  // (it may have arrived this very millisecond, at zero replicas).
  const wanted = Math.max(byConcurrency, byQps, ctx.instantConcurrency > 0 ? 1 : 0);
  const demand =
    `concurrency ${fmt(ctx.avgConcurrency)} over ${fmt(knobs.window_size_secs)}s / ${fmt(target)} → ${byConcurrency}` +
    (knobs.target_qps_per_replica === undefined ? '' : `, qps ${fmt(ctx.qps)} / ${fmt(knobs.target_qps_per_replica)} → ${byQps}`);
  const capped = (n: number): string => (n > knobs.max_replicas ? ` (capped at max_replicas ${knobs.max_replicas})` : '');

  if (current === 0 && (ctx.instantConcurrency > 0 || ctx.avgConcurrency > 0 || ctx.panicConcurrency > 0)) {
    const needed = Math.max(1, wanted, replicasFor(ctx.panicConcurrency, target), replicasFor(ctx.instantConcurrency, target));
    return {
      desired: clamp(needed),
      reason: 'scale_from_zero',
      detail: `${fmt(ctx.instantConcurrency)} waiting with no replica; ${demand}${capped(needed)}`,
      state: INITIAL_POLICY_STATE,
    };
  }

  const effective = clamp(current);
  const outOfBounds = effective !== current ? ` (${current} replicas outside [${knobs.min_replicas}, ${knobs.max_replicas}])` : '';
  const goal = clamp(wanted);

  const panicLine = knobs.panic_threshold * target * effective;
  const overPanic = effective > 0 && ctx.panicConcurrency >= panicLine;
  const panicUntil = overPanic ? now + stableMs : state.panicUntil !== null && now < state.panicUntil ? state.panicUntil : null;
  if (panicUntil !== null) {
    const byPanic = replicasFor(ctx.panicConcurrency, target);
    const needed = Math.max(effective, wanted, byPanic);
    const why = overPanic
      ? `concurrency ${fmt(ctx.panicConcurrency)} over ${fmt(knobs.panic_window_secs)}s ≥ ${fmt(knobs.panic_threshold)} × ${fmt(target)} × ${effective}`
      : `panic mode for ${fmt((panicUntil - now) / 1000)}s more, no scale-down`;
    return {
      desired: clamp(needed),
      reason: 'panic',
      detail: `${why}; panic window → ${byPanic}, ${demand}${capped(needed)}${outOfBounds}`,
      state: { ...INITIAL_POLICY_STATE, panicUntil },
    };
  }

  let decision: Decision;
  if (goal > effective) {
    decision = delayedUp(ctx, effective, goal, demand + capped(wanted));
  } else if (goal < effective) {
    decision = delayedDown(ctx, effective, goal, demand);
  } else if (wanted > knobs.max_replicas) {
    decision = { desired: effective, reason: 'bounds', detail: `${demand}, held at max_replicas ${knobs.max_replicas}${outOfBounds}`, state: INITIAL_POLICY_STATE };
  } else {
    decision = { desired: effective, reason: 'steady', detail: demand, state: INITIAL_POLICY_STATE };
  }
  // A count outside [min, max] is corrected at once, whatever delay the demand is waiting on.
  if (decision.desired !== current && (decision.reason === 'steady' || decision.reason === 'delayed_up' || decision.reason === 'delayed_down')) {
    return { ...decision, reason: 'bounds', detail: `${decision.detail}${outOfBounds}` };
  }
  return decision;
}

/**
 * Scale-up: a count above `effective` must have been wanted for the whole delay; the move then
 * goes only as far as every moment of the delay agreed on (the lowest count wanted in it).
 */
function delayedUp(ctx: PolicyContext, effective: number, goal: number, demand: string): Decision {
  const { now, knobs, state } = ctx;
  const delayMs = knobs.upscale_delay_secs * 1000;
  // A period still counts only while everything wanted in it lies above the current count
  // (the count may have moved under it, e.g. when a replica died).
  const continues = state.upSince !== null && state.upTarget > effective;
  const since = continues ? state.upSince! : now;
  const agreed = continues ? Math.min(state.upTarget, goal) : goal;

  if (now - since >= delayMs) {
    const held = delayMs > 0 ? ` held ${fmt((now - since) / 1000)}s` : '';
    return { desired: agreed, reason: 'scale_up', detail: `${demand};${held} ${effective} → ${agreed}`, state: INITIAL_POLICY_STATE };
  }
  const wait = `${fmt((delayMs - (now - since)) / 1000)}s left of upscale_delay_secs ${fmt(delayMs / 1000)}`;
  return {
    desired: effective,
    reason: 'delayed_up',
    detail: `${demand}; wants ${agreed}, ${wait}`,
    // Only reached when calm, so panic state is empty.
    state: { ...INITIAL_POLICY_STATE, upSince: since, upTarget: agreed },
  };
}

/**
 * Scale-down: replicas go only once a lower count has been all that was wanted for the whole
 * delay; the count is the highest wanted over the trailing delay (a sliding maximum), so a brief
 * dip removes nothing and a falling load steps down as soon as each step has held.
 */
function delayedDown(ctx: PolicyContext, effective: number, goal: number, demand: string): Decision {
  const { now, knobs, state } = ctx;
  const delayMs = knobs.scaledown_delay_secs * 1000;
  const continues = state.downSince !== null;
  const since = continues ? state.downSince! : now;
  const window: Array<readonly [number, number]> = (continues ? state.downWindow : []).filter(([t]) => t > now - delayMs);
  while (window.length > 0 && window[window.length - 1]![1] <= goal) window.pop();
  window.push([now, goal]);
  const agreed = window[0]![1];
  const pending = { ...INITIAL_POLICY_STATE, downSince: since, downTarget: agreed, downWindow: window };
  if (now - since >= delayMs && agreed < effective) {
    const held = delayMs > 0 ? ` held ${fmt((now - since) / 1000)}s` : '';
    return {
      desired: agreed,
      reason: 'scale_down',
      detail: `${demand};${held} ${effective} → ${agreed}`,
      // Reached what is wanted now: done. Otherwise keep the window and step again once the higher counts age out.
      state: agreed === goal ? INITIAL_POLICY_STATE : pending,
    };
  }
  const wait =
    now - since < delayMs
      ? `${fmt((delayMs - (now - since)) / 1000)}s left of scaledown_delay_secs ${fmt(delayMs / 1000)}`
      : `${agreed} wanted within the last ${fmt(delayMs / 1000)}s`;
  return { desired: effective, reason: 'delayed_down', detail: `${demand}; wants ${agreed}, ${wait}`, state: pending };
}
