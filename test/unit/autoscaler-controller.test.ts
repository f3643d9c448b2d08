import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { autoscalingSchema, type AutoscalingConfig } from '../../gateway/config/schema.js';
import { AutoscaleController, type DecisionRecord, type ScalableEndpoint } from '../../gateway/autoscaler/controller.js';
import type { ScalingSignals } from '../../gateway/autoscaler/signals.js';

/**
 * An endpoint whose replica counts follow scaleTo: new replicas count as starting until
 * `becomeReady`, removed ones as draining. With `lagging`, it only acts on the last request when
 * `catchUp` is called, like an endpoint waiting on a remote placement.
 */
class FakeEndpoint implements ScalableEndpoint {
  readonly name = 'echo';
  readonly autoscaling: AutoscalingConfig;
  readonly calls: Array<{ desired: number; reason: string; at: number }> = [];
  now = 0;
  ready: number;
  starting = 0;
  draining = 0;
  signalReads = 0;
  onScale: ((desired: number) => void) | undefined;
  private integral = 0;
  private arrivals = 0;
  private concurrency = 0;
  private pending: number | undefined;

  constructor(
    knobs: Partial<AutoscalingConfig>,
    replicas: number,
    private readonly lagging = false,
  ) {
    this.autoscaling = autoscalingSchema.parse(knobs);
    this.ready = replicas;
  }

  /** Moves the clock to t, integrating the concurrency held since the last change, and sets a new one. */
  load(t: number, concurrency: number, arrived = 0): this {
    this.integral += this.concurrency * (t - this.now);
    this.now = t;
    this.concurrency = concurrency;
    this.arrivals += arrived;
    return this;
  }

  signals(): ScalingSignals {
    this.signalReads += 1;
    return {
      now: this.now,
      concurrencyIntegral: this.integral,
      arrivals: this.arrivals,
      inFlight: Math.min(this.concurrency, this.ready * 4),
      queued: this.concurrency - Math.min(this.concurrency, this.ready * 4),
      replicas: { ready: this.ready, starting: this.starting, draining: this.draining },
    };
  }

  scaleTo(desired: number, reason: string): void {
    this.calls.push({ desired, reason, at: this.now });
    if (this.lagging) this.pending = desired;
    else this.apply(desired);
    this.onScale?.(desired);
  }

  catchUp(): void {
    if (this.pending !== undefined) this.apply(this.pending);
    this.pending = undefined;
  }

  becomeReady(): void {
    this.ready += this.starting;
    this.starting = 0;
  }

  private apply(desired: number): void {
    let diff = desired - (this.ready + this.starting);
    if (diff > 0) this.starting += diff;
    while (diff < 0) {
      if (this.starting > 0) this.starting -= 1;
      else {
        this.ready -= 1;
        this.draining += 1;
      }
      diff += 1;
    }
  }
}

const reasons = (records: DecisionRecord[]): string[] => records.map((r) => `${r.reason}:${r.current}→${r.desired}`);

describe('AutoscaleController', () => {
  test('scales up several replicas in one call and does not re-ask while they start', () => {
    const ep = new FakeEndpoint({ max_replicas: 10, target_concurrency_per_replica: 4, window_size_secs: 1, panic_threshold: 100 }, 1);
    const clock = { t: 1_000_000 };
    const ctl = new AutoscaleController(ep, { clock: () => clock.t });
    ep.load(0, 20);
    const first = ctl.tickNow();
    assert.equal(first?.reason, 'scale_up');
    assert.equal(first?.at, 1_000_000);
    assert.deepEqual(ep.calls, [{ desired: 5, reason: 'scale_up', at: 0 }]);
    assert.equal(ep.starting, 4);
    for (let t = 200; t <= 2000; t += 200) {
      ep.load(t, 20);
      ctl.tickNow();
    }
    ep.becomeReady();
    ep.load(2200, 20);
    ctl.tickNow();
    assert.equal(ep.calls.length, 1, JSON.stringify(ep.calls));
    assert.deepEqual(reasons(ctl.decisions()), ['scale_up:1→5', 'steady:5→5']);
    assert.deepEqual(ctl.decisions()[0]?.observed, { avgConcurrency: 20, panicConcurrency: 20, qps: 0 });
  });

  test('a request at zero replicas scales from zero through tickNow, once', () => {
    const ep = new FakeEndpoint({ min_replicas: 0, max_replicas: 4, upscale_delay_secs: 30 }, 0);
    const ctl = new AutoscaleController(ep, {});
    ep.load(0, 0);
    ctl.tickNow();
    ep.load(200, 0);
    ctl.tickNow();
    assert.equal(ep.calls.length, 0);
    // Two requests arrive in the same millisecond; each makes the endpoint call tickNow.
    ep.load(250, 1, 1);
    ctl.tickNow();
    ep.load(250, 2, 1);
    ctl.tickNow();
    assert.deepEqual(ep.calls, [{ desired: 1, reason: 'scale_from_zero', at: 250 }]);
    assert.deepEqual(reasons(ctl.decisions()), ['steady:0→0', 'scale_from_zero:0→1', 'steady:1→1']);
  });

  test('scales down only after the delay, once, and draining replicas do not count', () => {
    const ep = new FakeEndpoint({ max_replicas: 8, target_concurrency_per_replica: 4, window_size_secs: 1, scaledown_delay_secs: 2 }, 4);
    const ctl = new AutoscaleController(ep, {});
    for (let t = 0; t <= 4000; t += 200) {
      ep.load(t, 16);
      ctl.tickNow();
    }
    assert.equal(ep.calls.length, 0);
    // Load drops to one replica's worth; the 1 s window drains the average, then the 2 s delay runs.
    for (let t = 4200; t <= 9000; t += 200) {
      ep.load(t, 4);
      ctl.tickNow();
    }
    // The 1 s average slides from 16 to 4: it first wants 3 replicas at 4600, then 2 and then 1
    // from 5200. Once the lower demand has held 2 s (at 6600), each step is the highest count
    // wanted over the trailing 2 s: 3 at 6600, 2 at 6800, 1 at 7000, i.e. window + delay after
    // the load dropped, not a delay per step.
    assert.deepEqual(
      ep.calls.map((c) => [c.desired, c.reason, c.at]),
      [
        [3, 'scale_down', 6600],
        [2, 'scale_down', 6800],
        [1, 'scale_down', 7000],
      ],
    );
    assert.deepEqual([ep.ready, ep.starting, ep.draining], [1, 0, 3]);
    assert.deepEqual(reasons(ctl.decisions()), ['steady:4→4', 'delayed_down:4→4', 'scale_down:4→3', 'scale_down:3→2', 'scale_down:2→1', 'steady:1→1']);
  });

  test('a lagging endpoint is not asked twice, nor the other way, while it catches up', () => {
    const ep = new FakeEndpoint({ max_replicas: 10, target_concurrency_per_replica: 4, window_size_secs: 1, scaledown_delay_secs: 0, panic_threshold: 100 }, 1, true);
    const ctl = new AutoscaleController(ep, {});
    ep.load(0, 20);
    ctl.tickNow();
    assert.deepEqual(
      ep.calls.map((c) => c.desired),
      [5],
    );
    // The endpoint has not acted yet: the reading still says 1 replica, and the load eased to 3
    // replicas' worth. Deciding against the stale 1 would ask for 3 and undo the request for 5.
    for (let t = 200; t <= 800; t += 200) {
      ep.load(t, 20);
      ctl.tickNow();
    }
    assert.equal(ep.calls.length, 1);
    assert.equal(ctl.state().requested?.desired, 5);
    ep.catchUp();
    ep.load(1000, 20);
    ctl.tickNow();
    assert.equal(ctl.state().requested, null);
    assert.equal(ep.calls.length, 1);
  });

  test('a request the endpoint never reaches is repeated once a window has passed', () => {
    const ep = new FakeEndpoint({ max_replicas: 10, target_concurrency_per_replica: 4, window_size_secs: 1, panic_threshold: 100 }, 1, true);
    const ctl = new AutoscaleController(ep, {});
    for (let t = 0; t <= 1000; t += 200) {
      ep.load(t, 20);
      ctl.tickNow();
    }
    assert.deepEqual(
      ep.calls.map((c) => [c.desired, c.at]),
      [
        [5, 0],
        [5, 1000],
      ],
    );
  });

  test('a tickNow from inside scaleTo is ignored rather than nested', () => {
    const ep = new FakeEndpoint({ min_replicas: 0, max_replicas: 4 }, 0);
    const ctl = new AutoscaleController(ep, {});
    const nested: Array<DecisionRecord | undefined> = [];
    ep.onScale = () => nested.push(ctl.tickNow());
    ep.load(10, 3, 3);
    const outer = ctl.tickNow();
    assert.equal(outer?.reason, 'scale_from_zero');
    assert.deepEqual(nested, [undefined]);
    assert.equal(ep.calls.length, 1);
  });

  test('panic shows in state() and holds replicas; log receives exactly the recorded decisions', () => {
    const logged: DecisionRecord[] = [];
    const ep = new FakeEndpoint(
      { max_replicas: 20, target_concurrency_per_replica: 4, window_size_secs: 2, panic_window_secs: 0.4, panic_threshold: 2, scaledown_delay_secs: 1 },
      2,
    );
    const ctl = new AutoscaleController(ep, { log: (d) => logged.push(d) });
    for (let t = 0; t <= 2000; t += 200) {
      ep.load(t, 8);
      ctl.tickNow();
    }
    assert.equal(ep.calls.length, 0);
    ep.load(2000, 40);
    ep.load(2400, 40);
    ctl.tickNow();
    assert.equal(ctl.state().panicking, true);
    assert.deepEqual(ep.calls, [{ desired: 10, reason: 'panic', at: 2400 }]);
    ep.load(2400, 0);
    for (let t = 2600; t <= 4200; t += 200) {
      ep.load(t, 0);
      ctl.tickNow();
    }
    assert.equal(ep.calls.length, 1, 'no scale-down while panicking');
    assert.ok(ctl.state().panicking);
    for (let t = 4400; t <= 6000; t += 200) {
      ep.load(t, 0);
      ctl.tickNow();
    }
    assert.equal(ctl.state().panicking, false);
    assert.deepEqual(
      ep.calls.map((c) => [c.desired, c.reason]),
      [
        [10, 'panic'],
        [1, 'scale_down'],
      ],
    );
    assert.deepEqual(logged, ctl.decisions());
    const state = ctl.state();
    assert.equal(state.endpoint, 'echo');
    assert.equal(state.running, false);
    assert.deepEqual(state.replicas, { ready: 1, starting: 0, draining: 1 });
    assert.equal(state.last, logged.at(-1));
  });

  test('keeps only the last keepDecisions records, collapsing identical runs', () => {
    const ep = new FakeEndpoint({ min_replicas: 0, max_replicas: 2, window_size_secs: 1, scaledown_delay_secs: 0 }, 0);
    const all: DecisionRecord[] = [];
    const ctl = new AutoscaleController(ep, { keepDecisions: 3, log: (d) => all.push(d) });
    let t = 0;
    for (let i = 0; i < 3; i++) {
      ep.load((t += 200), 1, 1);
      ctl.tickNow(); // from zero
      ctl.tickNow(); // steady at 1
      ep.load((t += 1000), 0);
      ctl.tickNow(); // still steady: the window held the request
      ep.load((t += 1000), 0);
      ctl.tickNow(); // down to zero
      ctl.tickNow(); // steady at 0
      ctl.tickNow();
    }
    assert.deepEqual(reasons(all.slice(0, 4)), ['scale_from_zero:0→1', 'steady:1→1', 'scale_down:1→0', 'steady:0→0']);
    assert.equal(all.length, 12);
    const log = ctl.decisions();
    assert.deepEqual(log, all.slice(-3));
    assert.throws(() => new AutoscaleController(ep, { keepDecisions: 0 }), /keepDecisions/);
  });

  test('start ticks at once and then on the timer; stop ends it; timer errors go to onError', async () => {
    const ep = new FakeEndpoint({ tick_ms: 5 }, 1);
    const errors: unknown[] = [];
    const ctl = new AutoscaleController(ep, { onError: (err) => errors.push(err) });
    ctl.start();
    assert.equal(ep.signalReads, 1);
    assert.equal(ctl.state().running, true);
    await new Promise<void>((resolve) => {
      const wait = setInterval(() => {
        if (ep.signalReads >= 3) {
          clearInterval(wait);
          resolve();
        }
      }, 1);
    });
    ctl.stop();
    assert.equal(ctl.state().running, false);
    const reads = ep.signalReads;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(ep.signalReads, reads);

    const broken = new FakeEndpoint({ tick_ms: 5 }, 1);
    broken.signals = () => {
      throw new Error('tracker gone');
    };
    const failing = new AutoscaleController(broken, { onError: (err) => errors.push(err) });
    failing.start();
    failing.stop();
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /tracker gone/);
    assert.throws(() => failing.tickNow(), /tracker gone/);
  });
});
