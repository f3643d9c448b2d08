/**
 * An endpoint's replicas and their lifecycle: start (with backoff after failed starts and after
 * repeated deaths), ready, drain (no new work, stop once idle), stop, lost, wedged (a request
 * passed its deadline and the replica did not confirm the cancel within the grace: it is
 * terminated and replaced). `reconcile` converges the live count (ready + starting) to `desired`.
 * What happens to the requests of a replica that goes away is the endpoint's business: this class
 * tells it through `ReplicaSetEvents`.
 */
import type { EndpointConfig } from '../config/schema.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import { pickReplica } from '../routing/pick-replica.js';
import type { Clock, Timer } from './clock.js';
import { Replica } from './replica.js';
import { RestartBackoff } from './restart-backoff.js';

/** Creates links for new replicas of an endpoint; locally worker threads, remotely node agents. */
export interface ReplicaFactory {
  /** Up to `count` new links (fewer when the devices are full). */
  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[];
  /** A link it created is gone (stopped, failed or lost): its device slot is free again. */
  released?(link: ReplicaLink): void;
}

export interface ReplicaSetEvents {
  onFrames(replica: Replica, frames: ReplyFrame[]): void;
  /** A replica became ready: queued work may go to it. */
  onReady(replica: Replica): void;
  /** A replica failed to start; `live` is how many others are ready or starting. */
  onStartFailed(err: Error, live: number): void;
  /** A replica died or wedged with requests on it (still in `replica.calls`); the endpoint settles them. */
  onLost(replica: Replica, err: SwitchyardError): void;
  /** A replica was given up on; `reason` is `lost` or `wedged`. */
  onReplaced(replica: Replica, reason: ReplacementReason): void;
  onLog(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

export interface ReplicaCounts {
  ready: number;
  starting: number;
  draining: number;
}

export type ReplacementReason = 'lost' | 'wedged';

/** How a node's membership change touches the replicas on it. */
export type NodeChange = 'joined' | 'suspect' | 'recovered' | 'draining' | 'dead' | 'reconnected';

export class ReplicaSet {
  private readonly replicas: Replica[] = [];
  private readonly backoff: RestartBackoff;
  private reconcileTimer: Timer | undefined;
  private closed = false;
  desired: number;
  lastStartError: string | undefined;
  /** Replicas given up on since start, by reason. */
  readonly replaced: Record<ReplacementReason, number> = { lost: 0, wedged: 0 };

  constructor(
    private readonly name: string,
    private readonly config: EndpointConfig,
    private readonly factory: ReplicaFactory,
    private readonly clock: Clock,
    private readonly events: ReplicaSetEvents,
  ) {
    this.desired = config.autoscaling ? Math.max(config.autoscaling.min_replicas, Math.min(config.replicas, config.autoscaling.max_replicas)) : config.replicas;
    this.backoff = new RestartBackoff(() => clock.now());
  }

  /** Every replica that still exists (starting, ready or draining). */
  get all(): readonly Replica[] {
    return this.replicas;
  }

  /** Replicas that exist or are coming (not draining, not gone). */
  get live(): number {
    let n = 0;
    for (const r of this.replicas) if (r.state === 'ready' || r.state === 'starting') n++;
    return n;
  }

  counts(): ReplicaCounts {
    const counts: ReplicaCounts = { ready: 0, starting: 0, draining: 0 };
    for (const r of this.replicas) if (r.state === 'ready' || r.state === 'starting' || r.state === 'draining') counts[r.state]++;
    return counts;
  }

  /** Milliseconds until the next replica start may be attempted (0: now). */
  restartWaitMs(): number {
    return this.backoff.waitMs();
  }

  get startFailures(): number {
    return this.backoff.consecutiveFailures;
  }

  /** Replicas with a cancel they have not confirmed (the watchdog's work). */
  get awaitingConfirmation(): number {
    let n = 0;
    for (const r of this.replicas) if (r.overdue.size > 0) n++;
    return n;
  }

  /** Wedges every replica whose oldest unconfirmed cancel has waited `graceMs` or more. */
  checkWedged(graceMs: number): void {
    const now = this.clock.now();
    for (const replica of [...this.replicas]) {
      const since = replica.overdueSince;
      if (since !== undefined && now - since >= graceMs) this.wedge(replica, graceMs);
    }
  }

  /** A replica with room for one more request, preferring `regions` in order. */
  pick(regions: readonly string[]): Replica | undefined {
    return pickReplica(this.replicas, regions);
  }

  /** Sets the count to converge to (the autoscaler's seam). */
  scaleTo(desired: number, reason: string): void {
    if (desired === this.desired) return;
    this.events.onLog('info', 'scale', { endpoint: this.name, from: this.desired, to: desired, reason });
    this.desired = desired;
    this.reconcile();
  }

  reconcile(): void {
    if (this.closed) return;
    let live = this.live;
    if (live < this.desired) {
      const wait = this.backoff.waitMs();
      if (wait > 0) {
        this.reconcileTimer ??= this.clock.schedule(() => {
          this.reconcileTimer = undefined;
          this.reconcile();
        }, wait);
        return;
      }
      const links = this.factory.create(this.name, this.config, this.desired - live);
      if (links.length < this.desired - live) {
        this.events.onLog('warn', 'no device has room for more replicas', { endpoint: this.name, wanted: this.desired - live, placed: links.length });
      }
      for (const link of links) this.start(link);
      return;
    }
    // Too many: stop those still starting first, then drain the least busy ready ones.
    const candidates = this.replicas
      .filter((r) => r.state === 'starting' || r.state === 'ready')
      .sort((a, b) => (a.state === b.state ? a.inFlight - b.inFlight : a.state === 'starting' ? -1 : 1));
    for (const replica of candidates) {
      if (live <= this.desired) break;
      this.drain(replica);
      live--;
    }
  }

  /** A node's membership changed. `place`: whether to drain and re-place (false before the first placement and while shutting down). */
  onNodeChange(node: string, change: NodeChange, place: boolean): void {
    // A suspect node (heartbeats missed) takes no new requests until it recovers or is declared
    // dead; what it already holds stays, and is retried elsewhere if the node dies.
    if (change === 'suspect' || change === 'recovered') {
      for (const replica of this.replicas) if (replica.link.node === node) replica.suspect = change === 'suspect';
    }
    if (!place) return;
    if (change === 'draining') {
      for (const replica of [...this.replicas]) if (replica.link.node === node) this.drain(replica);
    }
    // A node that joined or came back may take what the endpoint is short of; one that died or
    // drains left replicas to re-place. Reconcile does nothing for an endpoint at its count.
    if (change !== 'suspect' && change !== 'reconnected') this.reconcile();
  }

  /** No new requests; stops once the in-flight ones finished. */
  drain(replica: Replica): void {
    if (replica.state !== 'ready' && replica.state !== 'starting') return;
    const wasStarting = replica.state === 'starting';
    replica.state = 'draining';
    this.events.onLog('info', 'replica draining', { endpoint: this.name, replica: replica.id, inFlight: replica.inFlight });
    if (wasStarting || replica.calls.size === 0) void this.stop(replica);
  }

  /** A request left `replica`: a draining replica stops once it holds none. */
  released(replica: Replica): void {
    if (replica.state === 'draining' && replica.calls.size === 0) void this.stop(replica);
  }

  /** Stops taking part in placement; `stopAll` ends the replicas. */
  close(): void {
    this.closed = true;
    this.reconcileTimer?.cancel();
    this.reconcileTimer = undefined;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.replicas].map((r) => this.stop(r)));
  }

  private start(link: ReplicaLink): void {
    const replica = new Replica(link, this.config.max_concurrency, this.clock.wallMs());
    this.replicas.push(replica);
    link
      .start({
        onFrames: (frames) => this.events.onFrames(replica, frames),
        onLost: (reason) => this.lost(replica, reason),
      })
      .then(
        () => {
          if (replica.state !== 'starting') {
            void link.stop();
            return;
          }
          replica.state = 'ready';
          this.backoff.started();
          this.lastStartError = undefined;
          this.events.onLog('info', 'replica ready', { endpoint: this.name, replica: replica.id, device: link.device, node: link.node });
          this.events.onReady(replica);
        },
        (err: Error) => {
          // Drained or stopped while it was starting: not a failed start.
          if (replica.state !== 'starting') return;
          replica.state = 'failed';
          this.lastStartError = err.message;
          this.remove(replica);
          this.backoff.startFailed();
          this.events.onLog('error', 'replica failed to start', { endpoint: this.name, replica: replica.id, error: err.message });
          this.events.onStartFailed(err, this.live);
          this.reconcile();
        },
      );
  }

  private async stop(replica: Replica): Promise<void> {
    if (replica.state === 'stopped') return;
    replica.state = 'stopped';
    this.remove(replica);
    try {
      await replica.link.stop();
    } catch (err) {
      this.events.onLog('warn', 'replica stop failed', { endpoint: this.name, replica: replica.id, error: (err as Error).message });
    }
  }

  private lost(replica: Replica, reason: string): void {
    if (replica.state === 'stopped' || replica.state === 'failed' || replica.state === 'wedged') return;
    this.events.onLog('warn', 'replica lost', { endpoint: this.name, replica: replica.id, reason, inFlight: replica.inFlight });
    replica.state = 'failed';
    replica.overdue.clear();
    this.remove(replica);
    this.backoff.died();
    this.replaced.lost++;
    this.events.onReplaced(replica, 'lost');
    this.events.onLost(replica, new SwitchyardError('SY_REPLICA_LOST', `the replica serving this request was lost: ${reason}`));
    this.reconcile();
  }

  /**
   * The replica did not confirm a cancel within the grace: its thread is stuck. It takes no new
   * work from now on, its requests go back to the endpoint, and it is terminated (it stays listed
   * as `wedged` until it is gone) while a replacement starts.
   */
  private wedge(replica: Replica, graceMs: number): void {
    if (replica.state !== 'ready' && replica.state !== 'draining') return;
    this.events.onLog('error', 'replica wedged: a request passed its deadline and the replica did not stop it; terminating and replacing it', {
      endpoint: this.name,
      replica: replica.id,
      graceMs,
      inFlight: replica.calls.size,
    });
    replica.state = 'wedged';
    replica.overdue.clear();
    this.backoff.died();
    this.replaced.wedged++;
    this.events.onReplaced(replica, 'wedged');
    this.events.onLost(
      replica,
      new SwitchyardError('SY_REPLICA_LOST', `replica ${replica.id} stopped responding (a request on it passed its deadline and it did not stop within ${graceMs} ms); it is being replaced`),
    );
    void replica.link
      .stop({ now: true })
      .catch((err: unknown) => this.events.onLog('warn', 'replica stop failed', { endpoint: this.name, replica: replica.id, error: (err as Error).message }))
      .finally(() => {
        replica.state = 'stopped';
        this.remove(replica);
      });
    this.reconcile();
  }

  private remove(replica: Replica): void {
    const i = this.replicas.indexOf(replica);
    if (i >= 0) {
      this.replicas.splice(i, 1);
      this.factory.released?.(replica.link);
    }
  }
}
