import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { autoscalingSchema, type AutoscalingConfig } from '../../gateway/config/schema.js';
import { decideReplicas, INITIAL_POLICY_STATE, type Decision, type PolicyState } from '../../gateway/autoscaler/policy.js';
import { SignalHistory, type ScalingSignals } from '../../gateway/autoscaler/signals.js';

function knobs(overrides: Partial<AutoscalingConfig>): AutoscalingConfig {
  return autoscalingSchema.parse(overrides);
}

interface Load {
  avg: number;
  panic?: number;
  instant?: number;
  qps?: number;
}

/** Runs the policy on a tick clock and applies each decision, as an endpoint that obeys at once would. */
class TickSim {
  now = 0;
  state: PolicyState = INITIAL_POLICY_STATE;
  readonly log: Decision[] = [];

  constructor(
    readonly knobs: AutoscalingConfig,
    public current: number,
  ) {}

  tick(load: Load, advanceMs = 1000): Decision {
    this.now += advanceMs;
    const decision = decideReplicas({
      now: this.now,
      knobs: this.knobs,
      avgConcurrency: load.avg,
      panicConcurrency: load.panic ?? load.avg,
      instantConcurrency: load.instant ?? load.avg,
      qps: load.qps ?? 0,
      current: this.current,
      state: this.state,
    });
    assert.ok(decision.desired >= this.knobs.min_replicas && decision.desired <= this.knobs.max_replicas, `desired ${decision.desired} out of bounds`);
    this.state = decision.state;
    this.current = decision.desired;
    this.log.push(decision);
    return decision;
  }

  ticks(n: number, load: Load, advanceMs = 1000): Decision[] {
    return Array.from({ length: n }, () => this.tick(load, advanceMs));
  }
}

const calmKnobs = { panic_threshold: 1000 };

describe('decideReplicas: demand and bounds', () => {
  test('scales several replicas in one decision (1 → 5)', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, target_concurrency_per_replica: 4, ...calmKnobs }), 1);
    const d = sim.tick({ avg: 20 });
    assert.equal(d.desired, 5);
    assert.equal(d.reason, 'scale_up');
    assert.match(d.detail, /concurrency 20 .*→ 5/);
  });

  test('ceil of the window average, robust to float residue', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, target_concurrency_per_replica: 4, ...calmKnobs }), 1);
    assert.equal(sim.tick({ avg: 8.000000000001 }).desired, 2);
    assert.equal(sim.tick({ avg: 8.1 }).desired, 3);
  });

  test('max_replicas caps a scale-up, and demand beyond it is reported as bounds', () => {
    const sim = new TickSim(knobs({ min_replicas: 1, max_replicas: 3, target_concurrency_per_replica: 4, ...calmKnobs }), 1);
    const up = sim.tick({ avg: 100 });
    assert.equal(up.desired, 3);
    assert.equal(up.reason, 'scale_up');
    assert.match(up.detail, /capped at max_replicas 3/);
    const held = sim.tick({ avg: 100 });
    assert.equal(held.desired, 3);
    assert.equal(held.reason, 'bounds');
  });

  test('min_replicas is a floor: no demand keeps min replicas, steady', () => {
    const sim = new TickSim(knobs({ min_replicas: 2, max_replicas: 5, scaledown_delay_secs: 0 }), 2);
    for (const d of sim.ticks(5, { avg: 0 })) {
      assert.equal(d.desired, 2);
      assert.equal(d.reason, 'steady');
    }
  });

  test('a count outside [min, max] is corrected at once, whatever the delays', () => {
    const over = new TickSim(knobs({ min_replicas: 1, max_replicas: 4, scaledown_delay_secs: 600, ...calmKnobs }), 7);
    const down = over.tick({ avg: 0 });
    assert.equal(down.desired, 4);
    assert.equal(down.reason, 'bounds');
    assert.match(down.detail, /7 replicas outside \[1, 4\]/);
    // The rest of the way down still waits for the delay.
    assert.equal(over.tick({ avg: 0 }).reason, 'delayed_down');
    assert.equal(over.current, 4);

    const under = new TickSim(knobs({ min_replicas: 2, max_replicas: 8, upscale_delay_secs: 600 }), 0);
    const up = under.tick({ avg: 0 });
    assert.equal(up.desired, 2);
    assert.equal(up.reason, 'bounds');

    const underLoaded = new TickSim(knobs({ min_replicas: 2, max_replicas: 8, upscale_delay_secs: 600, ...calmKnobs }), 1);
    const both = underLoaded.tick({ avg: 24 });
    assert.equal(both.desired, 2, 'the floor applies at once; the demand above it waits for upscale_delay_secs');
    assert.equal(both.reason, 'bounds');
    assert.notEqual(both.state.upSince, null);
  });
});

describe('decideReplicas: scale-down delay', () => {
  const k = knobs({ min_replicas: 1, max_replicas: 10, target_concurrency_per_replica: 4, scaledown_delay_secs: 30, ...calmKnobs });

  test('a lower count must hold for scaledown_delay_secs before replicas drain', () => {
    const sim = new TickSim(k, 4);
    // The lower count is first seen at the first tick; it has held 30 s on the 31st.
    const waiting = sim.ticks(30, { avg: 4 });
    for (const d of waiting) {
      assert.equal(d.desired, 4);
      assert.equal(d.reason, 'delayed_down');
    }
    assert.match(waiting[0]?.detail ?? '', /wants 1, 30s left of scaledown_delay_secs 30/);
    const down = sim.tick({ avg: 4 });
    assert.equal(down.reason, 'scale_down');
    assert.equal(down.desired, 1);
    assert.equal(down.state.downSince, null);
  });

  test('a brief dip does not scale down, and the next dip starts the delay afresh', () => {
    const sim = new TickSim(k, 4);
    sim.ticks(20, { avg: 2 });
    assert.equal(sim.tick({ avg: 16 }).reason, 'steady');
    assert.equal(sim.state.downSince, null);
    const again = sim.ticks(30, { avg: 2 });
    assert.ok(again.every((d) => d.desired === 4 && d.reason === 'delayed_down'));
    assert.equal(sim.tick({ avg: 2 }).desired, 1);
  });

  test('the highest count wanted during the delay wins', () => {
    const sim = new TickSim(k, 6);
    sim.ticks(10, { avg: 4 }); // wants 1
    sim.ticks(10, { avg: 12 }); // wants 3
    sim.ticks(10, { avg: 8 }); // wants 2
    const down = sim.tick({ avg: 4 });
    assert.equal(down.reason, 'scale_down');
    assert.equal(down.desired, 3);
  });

  test('a falling load steps down as each lower count has held the delay, not one delay per step', () => {
    const sim = new TickSim(k, 6);
    sim.ticks(10, { avg: 12 }); // wants 3
    sim.ticks(5, { avg: 8 }); // wants 2
    sim.ticks(15, { avg: 4 }); // wants 1
    // 30 s after the demand first fell: the highest of the trailing 30 s (3).
    const first = sim.tick({ avg: 4 });
    assert.deepEqual([first.reason, first.desired], ['scale_down', 3]);
    // The 3s age out of the trailing 30 s over the next ten ticks, then the 2s over five more.
    const next = sim.ticks(15, { avg: 4 });
    const steps = next.filter((d) => d.reason === 'scale_down').map((d) => d.desired);
    assert.deepEqual(steps, [2, 1]);
    assert.equal(sim.current, 1);
    assert.deepEqual(sim.state, INITIAL_POLICY_STATE, 'reaching what is wanted now ends the pending scale-down');
  });

  test('scaledown_delay_secs 0 scales down on the first tick', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, scaledown_delay_secs: 0, ...calmKnobs }), 5);
    const d = sim.tick({ avg: 4 });
    assert.equal(d.reason, 'scale_down');
    assert.equal(d.desired, 1);
  });

  test('scales to zero after the delay when min_replicas is 0', () => {
    const sim = new TickSim(knobs({ min_replicas: 0, max_replicas: 3, scaledown_delay_secs: 5 }), 1);
    assert.ok(sim.ticks(5, { avg: 0 }).every((d) => d.reason === 'delayed_down'));
    const d = sim.tick({ avg: 0 });
    assert.equal(d.reason, 'scale_down');
    assert.equal(d.desired, 0);
    assert.equal(sim.tick({ avg: 0 }).reason, 'steady');
  });
});

describe('decideReplicas: upscale delay', () => {
  const k = knobs({ max_replicas: 10, target_concurrency_per_replica: 4, upscale_delay_secs: 3, ...calmKnobs });

  test('a higher count must hold for upscale_delay_secs; the lowest wanted in that time wins', () => {
    const sim = new TickSim(k, 1);
    const first = sim.tick({ avg: 40 });
    assert.equal(first.reason, 'delayed_up');
    assert.equal(first.desired, 1);
    assert.equal(sim.tick({ avg: 16 }).reason, 'delayed_up'); // wants 4
    assert.equal(sim.tick({ avg: 40 }).reason, 'delayed_up');
    const up = sim.tick({ avg: 40 });
    assert.equal(up.reason, 'scale_up');
    assert.equal(up.desired, 4);
  });

  test('a spike shorter than the delay adds nothing', () => {
    const sim = new TickSim(k, 1);
    sim.ticks(2, { avg: 40 });
    assert.equal(sim.tick({ avg: 2 }).reason, 'steady');
    assert.equal(sim.current, 1);
    assert.equal(sim.state.upSince, null);
  });

  test('upscale_delay_secs 0 (the default) scales up on the first tick', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, ...calmKnobs }), 1);
    assert.equal(sim.tick({ avg: 9 }).reason, 'scale_up');
    assert.equal(sim.current, 3);
  });
});

describe('decideReplicas: panic', () => {
  const k = knobs({
    max_replicas: 20,
    target_concurrency_per_replica: 4,
    panic_threshold: 2,
    window_size_secs: 3,
    upscale_delay_secs: 10,
    scaledown_delay_secs: 2,
  });

  test('short-window concurrency at panic_threshold × target × replicas scales up at once, past the upscale delay', () => {
    const sim = new TickSim(k, 2);
    const calm = sim.tick({ avg: 2, panic: 15.9 });
    assert.notEqual(calm.reason, 'panic');
    assert.equal(calm.desired, 2);
    const d = sim.tick({ avg: 2, panic: 16 });
    assert.equal(d.reason, 'panic');
    assert.equal(d.desired, 4);
    assert.match(d.detail, /≥ 2 × 4 × 2/);
    assert.notEqual(d.state.panicUntil, null);
  });

  test('no scale-down while panicking; the delay starts only after a calm stable window', () => {
    const sim = new TickSim(k, 2);
    sim.tick({ avg: 2, panic: 40 }, 500); // panic → 10
    assert.equal(sim.current, 10);
    // Load collapses; panic mode lasts window_size_secs (3 s) past the last panic reading.
    const holding = sim.ticks(5, { avg: 1, panic: 1 }, 500);
    assert.ok(holding.every((d) => d.reason === 'panic' && d.desired === 10), JSON.stringify(holding.map((d) => d.reason)));
    const ended = sim.tick({ avg: 1, panic: 1 }, 500);
    assert.equal(ended.reason, 'delayed_down');
    assert.equal(ended.state.panicUntil, null);
    sim.ticks(3, { avg: 1, panic: 1 }, 500);
    const down = sim.tick({ avg: 1, panic: 1 }, 500);
    assert.equal(down.reason, 'scale_down');
    assert.equal(down.desired, 1);
  });

  test('a renewed panic extends panic mode and scales further up', () => {
    const sim = new TickSim(k, 2);
    sim.tick({ avg: 2, panic: 16 }, 500); // → 4
    sim.tick({ avg: 2, panic: 1 }, 500);
    const again = sim.tick({ avg: 8, panic: 36 }, 500); // 36 ≥ 2 × 4 × 4 → 9
    assert.equal(again.reason, 'panic');
    assert.equal(again.desired, 9);
    assert.equal(again.state.panicUntil, sim.now + 3000);
  });
});

describe('decideReplicas: from zero', () => {
  const k = knobs({ min_replicas: 0, max_replicas: 5, target_concurrency_per_replica: 4, upscale_delay_secs: 60 });

  test('a request waiting at zero replicas starts one at once, skipping the upscale delay', () => {
    const sim = new TickSim(k, 0);
    const d = sim.tick({ avg: 0, panic: 0, instant: 1 });
    assert.equal(d.reason, 'scale_from_zero');
    assert.equal(d.desired, 1);
  });

  test('a burst waiting at zero starts enough replicas for it', () => {
    const sim = new TickSim(k, 0);
    const d = sim.tick({ avg: 0.5, panic: 2, instant: 10 });
    assert.equal(d.reason, 'scale_from_zero');
    assert.equal(d.desired, 3);
    const capped = new TickSim(k, 0).tick({ avg: 0, panic: 0, instant: 100 });
    assert.equal(capped.desired, 5);
  });

  test('a replica just started from zero is not scaled back while its request has no window weight yet', () => {
    const sim = new TickSim(knobs({ min_replicas: 0, max_replicas: 5, scaledown_delay_secs: 0 }), 0);
    assert.equal(sim.tick({ avg: 0, instant: 1 }, 1).reason, 'scale_from_zero');
    const next = sim.tick({ avg: 0.0001, panic: 0.001, instant: 1 }, 1);
    assert.equal(next.reason, 'steady');
    assert.equal(next.desired, 1);
    assert.equal(sim.tick({ avg: 0, panic: 0, instant: 1 }, 1).desired, 1);
  });

  test('nothing waiting at zero stays at zero', () => {
    const sim = new TickSim(k, 0);
    for (const d of sim.ticks(3, { avg: 0 })) {
      assert.equal(d.reason, 'steady');
      assert.equal(d.desired, 0);
    }
  });
});

describe('decideReplicas: target_qps_per_replica', () => {
  test('QPS demand scales up when concurrency alone would not', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, target_concurrency_per_replica: 4, target_qps_per_replica: 10, ...calmKnobs }), 1);
    const d = sim.tick({ avg: 1, qps: 45 });
    assert.equal(d.desired, 5);
    assert.equal(d.reason, 'scale_up');
    assert.match(d.detail, /qps 45 \/ 10 → 5/);
  });

  test('the larger of the two demands wins', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, target_concurrency_per_replica: 4, target_qps_per_replica: 100, ...calmKnobs }), 1);
    assert.equal(sim.tick({ avg: 28, qps: 150 }).desired, 7);
  });

  test('without the knob QPS is ignored', () => {
    const sim = new TickSim(knobs({ max_replicas: 10, ...calmKnobs }), 1);
    assert.equal(sim.tick({ avg: 1, qps: 10_000 }).desired, 1);
  });
});

/** A concurrency tracker with an exact integral, as the endpoint keeps one. */
class FakeTracker {
  private t = 0;
  private integral = 0;
  private arrivals = 0;
  private inFlight = 0;

  /** Advances to time t (ms), integrating the concurrency held since the last change. */
  at(t: number): this {
    this.integral += this.inFlight * (t - this.t);
    this.t = t;
    return this;
  }

  admit(n = 1): this {
    this.inFlight += n;
    this.arrivals += n;
    return this;
  }

  finish(n = 1): this {
    this.inFlight -= n;
    return this;
  }

  signals(): ScalingSignals {
    return {
      now: this.t,
      concurrencyIntegral: this.integral,
      arrivals: this.arrivals,
      inFlight: this.inFlight,
      queued: 0,
      replicas: { ready: 1, starting: 0, draining: 0 },
    };
  }
}

describe('SignalHistory: window averaging', () => {
  test('Δintegral / Δt over the window, including requests shorter than a tick', () => {
    const tracker = new FakeTracker();
    const history = SignalHistory.covering(3000, 200);
    history.push(tracker.at(0).signals());
    // Every 200 ms tick, 10 requests that each last 50 ms come and go between readings.
    for (let t = 0; t < 3000; t += 200) {
      tracker.at(t + 10).admit(10).at(t + 60).finish(10);
      history.push(tracker.at(t + 200).signals());
    }
    // 15 ticks × 10 requests × 50 ms = 7500 request·ms over 3000 ms.
    assert.equal(history.averageConcurrency(3000, 3000), 2.5);
    assert.equal(history.qps(3000, 3000), 50);
    // A gauge sampled at the ticks would have read zero every time.
    assert.equal(tracker.signals().inFlight, 0);
  });

  test('short and long windows separate a fresh burst from the stable average', () => {
    const tracker = new FakeTracker();
    const history = SignalHistory.covering(3000, 200);
    for (let t = 0; t <= 2600; t += 200) history.push(tracker.at(t).signals());
    tracker.at(2600).admit(32);
    history.push(tracker.at(2800).signals());
    history.push(tracker.at(3000).signals());
    assert.equal(history.averageConcurrency(500, 3000), (32 * 400) / 500);
    assert.ok(Math.abs(history.averageConcurrency(3000, 3000) - (32 * 400) / 3000) < 1e-9);

    const k = knobs({ max_replicas: 20, target_concurrency_per_replica: 4, panic_threshold: 2, panic_window_secs: 0.5 });
    const d = decideReplicas({
      now: 3000,
      knobs: k,
      avgConcurrency: history.averageConcurrency(3000, 3000),
      panicConcurrency: history.averageConcurrency(500, 3000),
      instantConcurrency: 32,
      qps: history.qps(3000, 3000),
      current: 1,
      state: INITIAL_POLICY_STATE,
    });
    assert.equal(d.reason, 'panic');
    assert.equal(d.desired, 7); // ceil(25.6 / 4)
  });

  test('falls back to the instantaneous value with no span; averages what there is when shorter than the window', () => {
    const tracker = new FakeTracker();
    const history = SignalHistory.covering(3000, 200);
    assert.equal(history.averageConcurrency(3000, 0), 0);
    history.push(tracker.at(1000).admit(6).signals());
    assert.equal(history.averageConcurrency(3000, 1000), 6);
    assert.equal(history.qps(3000, 1000), 0);
    history.push(tracker.at(1200).finish(6).signals());
    assert.equal(history.averageConcurrency(3000, 1200), 6); // 6 held for the whole 200 ms seen
    history.push(tracker.at(1400).signals());
    assert.equal(history.averageConcurrency(3000, 1400), 3);
  });

  test('a window starting between readings is interpolated, and a reading-free tail extends at the last concurrency', () => {
    const tracker = new FakeTracker();
    const history = SignalHistory.covering(1000, 200);
    history.push(tracker.at(0).admit(2).signals());
    history.push(tracker.at(400).signals());
    history.push(tracker.at(800).signals());
    assert.equal(history.averageConcurrency(500, 800), 2);
    assert.equal(history.averageConcurrency(500, 1000), 2); // nothing changed since the last reading
  });

  test('stays bounded: old readings leave, and a burst of readings does not push the window out', () => {
    const tracker = new FakeTracker();
    const history = SignalHistory.covering(1000, 200);
    assert.equal(history.capacity, 12);
    for (let t = 0; t <= 10_000; t += 200) history.push(tracker.at(t).signals());
    assert.equal(history.length, history.capacity);
    // The only load in the last second: one request held for 100 ms, then a burst of readings 1 ms apart.
    tracker.at(10_000).admit().at(10_100).finish();
    for (let t = 10_101; t < 10_199; t++) history.push(tracker.at(t).signals());
    history.push(tracker.at(10_200).signals());
    assert.equal(history.length, history.capacity);
    assert.ok(Math.abs(history.averageConcurrency(1000, 10_200) - 0.1) < 1e-9);
  });

  test('a tracker restart (counters going backwards) clears the history', () => {
    const history = SignalHistory.covering(1000, 200);
    history.push(new FakeTracker().at(500).admit(3).at(1000).signals());
    history.push(new FakeTracker().at(200).signals());
    assert.equal(history.length, 1);
    assert.equal(history.averageConcurrency(1000, 200), 0);
  });
});
