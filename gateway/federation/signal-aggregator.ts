/**
 * The leader's view of an endpoint's load across every gateway. Each gateway publishes its
 * tracker's cumulative counters (concurrency integral, arrivals) and instant load every tick; the
 * sum of cumulative counters is itself cumulative, so the autoscaler's window averages over the
 * sum are exact for the total traffic, however it is split.
 *
 * A gateway's counters count from its own start, so each is taken relative to its first report
 * (a gateway joining mid-run adds no spike), and a gateway that stopped reporting keeps the part
 * it contributed while its instant load drops out (a gateway leaving causes no drop either).
 */
import type { ScalingSignals, ReplicaCounts } from '../autoscaler/signals.js';

export interface GatewayLoad {
  integral: number;
  arrivals: number;
  inFlight: number;
  queued: number;
}

interface Contribution {
  base: { integral: number; arrivals: number };
  last: GatewayLoad;
  at: number;
}

export class SignalAggregator {
  private readonly gateways = new Map<string, Contribution>();

  /** @param staleMs a gateway silent this long contributes no instant load */
  constructor(private readonly staleMs: number) {}

  report(gateway: string, load: GatewayLoad, now: number): void {
    const known = this.gateways.get(gateway);
    if (!known || load.integral < known.last.integral || load.arrivals < known.last.arrivals) {
      // New, or counters went backwards: start from here, keeping what it contributed before.
      const kept = known ? { integral: known.last.integral - known.base.integral, arrivals: known.last.arrivals - known.base.arrivals } : { integral: 0, arrivals: 0 };
      this.gateways.set(gateway, { base: { integral: load.integral - kept.integral, arrivals: load.arrivals - kept.arrivals }, last: load, at: now });
      return;
    }
    known.last = load;
    known.at = now;
  }

  /** Gateways that reported within the stale bound, with their instant load (in-flight + queued). */
  loads(now: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [gateway, c] of this.gateways) if (now - c.at <= this.staleMs) out.set(gateway, c.last.inFlight + c.last.queued);
    return out;
  }

  signals(now: number, replicas: ReplicaCounts): ScalingSignals {
    let integral = 0;
    let arrivals = 0;
    let inFlight = 0;
    let queued = 0;
    for (const c of this.gateways.values()) {
      integral += c.last.integral - c.base.integral;
      arrivals += c.last.arrivals - c.base.arrivals;
      if (now - c.at <= this.staleMs) {
        inFlight += c.last.inFlight;
        queued += c.last.queued;
      }
    }
    return { now, concurrencyIntegral: integral, arrivals, inFlight, queued, replicas };
  }
}
