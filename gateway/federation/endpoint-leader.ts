/**
 * One endpoint's record in the replicas bucket, as every federated gateway follows it, and the
 * leader's part when this gateway holds the lease.
 *
 * Every gateway reads the record each tick. The one named in it renews the lease by writing it
 * (at least every lease/3); when the record stood still for a whole lease, any gateway may take it
 * over with a compare-and-set on the revision it saw, and that write's revision becomes its
 * fencing token, announced to the nodes at once. Every decision the leader takes is first written
 * to the record with a compare-and-set on the revision it last wrote, and only then sent to a
 * node with the token: a leader that was paused or cut off past its lease finds the revision
 * moved, steps down and sends nothing; a message it sent before it was paused reaches nodes that
 * already know a newer token and is refused.
 *
 * A new leader cannot know whether its predecessor's `starting` replicas were ever placed, so it
 * stops them (with its token) and places afresh: a replica never exists twice.
 */
import { nuid } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { AutoscaleController, type ScalableEndpoint } from '../autoscaler/controller.js';
import type { AutoscalingConfig } from '../config/schema.js';
import type { RemoteCluster } from '../cluster/remote-link.js';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import type { Fence, PlaceReply, PlaceRequest } from '../../workers/cluster/subjects.js';
import { decodeJson, encodeJson, type StoredEndpoint } from './deployment.js';
import { LeaseWatch, planReplicaSet, type ReplicaSetRecord, type SharedReplica } from './replica-set.js';
import { chooseSharedReplicas } from './shared-placement.js';
import type { SignalAggregator } from './signal-aggregator.js';

export interface LeaderTimings {
  /** A record unchanged this long has no leader; the leader writes at least every third of it. */
  leaseMs: number;
  /** A ready replica missing from its node's heartbeats this long is gone. */
  missingGraceMs: number;
  /** A draining replica is stopped when idle and drained this long (gateways saw it), or after drainTimeoutMs. */
  minDrainMs: number;
  drainTimeoutMs: number;
  placementTimeoutMs: number;
  /**
   * How long a removed endpoint's replicas keep serving before they drain: every gateway rereads
   * the deployment each second and stops routing to it, so requests they already took still find
   * a ready replica.
   */
  removalGraceMs: number;
}

export interface EndpointLeaderOptions {
  kv: KV;
  cluster: RemoteCluster;
  region: string;
  timings: LeaderTimings;
  aggregator: SignalAggregator;
  /** Replica keys on `node` over every endpoint's record, so placement counts slots other endpoints hold. */
  occupied(node: string): Set<string>;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

const clone = <T>(v: T): T => structuredClone(v);

/** The count an endpoint starts at: `replicas`, within the autoscaler's bounds. */
function initialCount(stored: StoredEndpoint): number {
  const a = stored.config.autoscaling;
  return a ? Math.max(a.min_replicas, Math.min(stored.config.replicas, a.max_replicas)) : stored.config.replicas;
}

export class EndpointLeader {
  private revision = 0;
  private current: ReplicaSetRecord | undefined;
  private readonly lease: LeaseWatch;
  private leading = false;
  private token = 0;
  private lastWriteAt = 0;
  private desiredNow: number;
  private autoscaler: AutoscaleController | undefined;
  /** Keys this leader is placing now. */
  private readonly placing = new Set<string>();
  private readonly stopping = new Set<string>();
  /** A write is under way: writes are serialized so each conditions on the previous one. */
  private writing: Promise<unknown> = Promise.resolve();
  /** Failed starts back off (250 ms doubling, up to 30 s), so a predictor that cannot load does not spin. */
  private startFailures = 0;
  private nextStartAt = 0;
  /** The endpoint left the deployment: its replicas drain and stop, then its record is deleted. */
  private retired = false;
  /** performance.now() when it was retired. */
  private retiredAt = 0;
  private recordGone = false;
  lastError: string | undefined;

  constructor(
    private stored: StoredEndpoint,
    private readonly opts: EndpointLeaderOptions,
  ) {
    this.lease = new LeaseWatch(opts.timings.leaseMs);
    this.desiredNow = initialCount(stored);
  }

  get name(): string {
    return this.stored.name;
  }

  get key(): string {
    return `ep.${this.stored.name}`;
  }

  get record(): ReplicaSetRecord | undefined {
    return this.current;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get autoscalerState(): unknown {
    return this.autoscaler?.state();
  }

  /** A redeploy: a new version rolls out, new knobs apply from the next decision. */
  update(stored: StoredEndpoint): void {
    this.stored = stored;
    if (this.retired) {
      // Deployed again while it was being removed: it serves again.
      this.retired = false;
      this.recordGone = false;
      this.desiredNow = initialCount(stored);
      if (this.leading && stored.config.autoscaling) this.startAutoscaler(stored.config.autoscaling);
    }
    if (!stored.config.autoscaling) this.desiredNow = stored.config.replicas;
  }

  /**
   * The endpoint left the deployment: whoever leads it drains and stops every replica (in-flight
   * requests finish first), then deletes its record. Followers keep following, so a new leader
   * finishes the job if this one dies.
   */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.retiredAt = performance.now();
    this.autoscaler?.stop();
    this.autoscaler = undefined;
    this.desiredNow = 0;
  }

  /** Retired, and its record is gone: nothing is left to follow. */
  get finished(): boolean {
    return this.retired && this.recordGone;
  }

  stop(): void {
    this.autoscaler?.stop();
    this.autoscaler = undefined;
    this.leading = false;
  }

  /** Reads the record, keeps or takes the lease, and leads when it holds it. */
  async tick(): Promise<void> {
    const now = Date.now();
    const entry = await this.opts.kv.get(this.key);
    if (!entry || entry.operation !== 'PUT') {
      // Only a removal deletes a record: one this gateway saw is not created again from here (the
      // deployment, reread every second, says whether the endpoint is deployed again).
      if (this.retired || this.current) {
        this.retire();
        this.recordGone = true;
        this.stop();
        return;
      }
      await this.claim(undefined);
      return;
    }
    if (entry.revision > this.revision || !this.current) {
      this.revision = entry.revision;
      this.current = decodeJson<ReplicaSetRecord>(entry.value);
    }
    this.lease.observe(entry.revision, performance.now());
    if (this.leading && this.current.leader !== this.opts.cluster.gatewayId) this.stepDown('another gateway took the lease');
    if (!this.leading) {
      if (this.lease.expired(performance.now())) await this.claim(entry.revision);
      return;
    }
    await this.lead(now);
  }

  private async claim(revision: number | undefined): Promise<void> {
    const base: ReplicaSetRecord = this.current
      ? clone(this.current)
      : { endpoint: this.name, leader: '', leaderRegion: '', token: 0, desired: this.desiredNow, version: this.stored.version, replicas: [], renewedAt: 0 };
    base.leader = this.opts.cluster.gatewayId;
    base.leaderRegion = this.opts.region;
    base.renewedAt = Date.now();
    let rev: number;
    try {
      rev = revision === undefined ? await this.opts.kv.create(this.key, encodeJson(base)) : await this.opts.kv.update(this.key, encodeJson(base), revision);
    } catch {
      return; // another gateway was faster
    }
    this.leading = true;
    this.token = rev;
    this.revision = rev;
    this.current = base;
    this.lastWriteAt = performance.now();
    if (this.retired) this.desiredNow = 0;
    else this.desiredNow = this.stored.config.autoscaling ? Math.max(this.stored.config.autoscaling.min_replicas, base.desired) : this.stored.config.replicas;
    this.opts.cluster.connection.publish(this.opts.cluster.connection.subjects.fence, pack({ endpoint: this.name, token: rev } satisfies Fence));
    this.opts.log('info', 'leading endpoint', { endpoint: this.name, token: rev });
    if (this.stored.config.autoscaling && !this.retired) this.startAutoscaler(this.stored.config.autoscaling);
    // Inherited starts may or may not have reached their node: stop them and place afresh.
    const inherited = base.replicas.filter((r) => r.state === 'starting');
    if (inherited.length) {
      const ok = await this.commit((r) => {
        r.replicas = r.replicas.filter((x) => x.state !== 'starting');
      });
      if (ok) for (const r of inherited) void this.stopOnNode(r);
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.opts.log('warn', 'no longer leading endpoint', { endpoint: this.name, why });
    this.stop();
  }

  private startAutoscaler(knobs: AutoscalingConfig): void {
    const self = this;
    const scalable: ScalableEndpoint = {
      name: this.name,
      get autoscaling() {
        return self.stored.config.autoscaling ?? knobs;
      },
      signals: () => this.opts.aggregator.signals(performance.now(), this.counts()),
      scaleTo: (desired, reason) => {
        this.opts.log('info', 'scale', { endpoint: this.name, from: this.desiredNow, to: desired, reason });
        this.desiredNow = desired;
      },
    };
    this.autoscaler = new AutoscaleController(scalable, { onError: (err) => this.opts.log('error', 'autoscaler tick failed', { endpoint: this.name, err: String(err) }) });
    this.autoscaler.start();
  }

  private counts(): { ready: number; starting: number; draining: number } {
    const c = { ready: 0, starting: 0, draining: 0 };
    for (const r of this.current?.replicas ?? []) {
      if (r.state === 'draining') c.draining++;
      else if (r.version === this.stored.version) c[r.state]++;
    }
    return c;
  }

  /** Writes `mutate(record)` conditioned on the last revision; a failure means the lease is gone. */
  private commit(mutate: (record: ReplicaSetRecord) => void): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      if (!this.leading || !this.current) return false;
      const next = clone(this.current);
      mutate(next);
      next.token = this.token;
      next.renewedAt = Date.now();
      try {
        this.revision = await this.opts.kv.update(this.key, encodeJson(next), this.revision);
      } catch (err) {
        this.stepDown(`the record moved under it (${(err as Error).message})`);
        return false;
      }
      this.current = next;
      this.lastWriteAt = performance.now();
      return true;
    };
    const result = this.writing.then(run, run);
    this.writing = result;
    return result;
  }

  private present(r: SharedReplica, now: number): boolean {
    const member = this.opts.cluster.node(r.node);
    if (!member || member.incarnation !== r.incarnation) return false;
    if (r.state === 'starting') return this.placing.has(r.key);
    if (r.key in member.inFlight) return true;
    return now - r.since < this.opts.timings.missingGraceMs;
  }

  private async lead(now: number): Promise<void> {
    const record = this.current!;
    if (this.retired && record.replicas.length === 0) {
      await this.deleteRecord();
      return;
    }
    if (this.retired && performance.now() - this.retiredAt < this.opts.timings.removalGraceMs) {
      // Gateways are still letting go of it: keep its replicas serving, and the lease.
      if (performance.now() - this.lastWriteAt > this.opts.timings.leaseMs / 3) await this.commit(() => undefined);
      return;
    }
    const plan = planReplicaSet({ replicas: record.replicas, desired: this.desiredNow, version: this.stored.version }, (r) => this.present(r, now));
    if (now < this.nextStartAt) plan.start = 0;
    const drained = record.replicas.filter((r) => r.state === 'draining' && !this.stopping.has(r.key) && this.drained(r, now));
    const changed = plan.start > 0 || plan.drain.length > 0 || plan.forget.length > 0 || record.desired !== this.desiredNow || record.version !== this.stored.version;
    if (changed) {
      const forgotten = record.replicas.filter((r) => plan.forget.includes(r.key));
      const starts = this.choose(plan.start);
      const ok = await this.commit((r) => {
        r.desired = this.desiredNow;
        r.version = this.stored.version;
        r.replicas = r.replicas.filter((x) => !plan.forget.includes(x.key));
        for (const x of r.replicas) if (plan.drain.includes(x.key)) Object.assign(x, { state: 'draining', since: now });
        r.replicas.push(...starts);
      });
      if (!ok) return;
      for (const r of forgotten) void this.stopOnNode(r);
      for (const r of starts) void this.placeOnNode(r);
    } else if (performance.now() - this.lastWriteAt > this.opts.timings.leaseMs / 3) {
      await this.commit(() => undefined);
    }
    for (const r of drained) void this.finishDrain(r);
  }

  /** The last step of a removal: the record goes, conditioned on the revision this leader wrote. */
  private async deleteRecord(): Promise<void> {
    try {
      await this.opts.kv.delete(this.key, { previousSeq: this.revision });
    } catch (err) {
      this.stepDown(`the record moved under it (${(err as Error).message})`);
      return;
    }
    this.recordGone = true;
    this.opts.log('info', 'endpoint removed: every replica stopped', { endpoint: this.name });
    this.stop();
  }

  /** A draining replica may stop: gateways had time to see it drain, and it has nothing in flight (or took too long). */
  private drained(r: SharedReplica, now: number): boolean {
    const member = this.opts.cluster.node(r.node);
    if (!member || member.incarnation !== r.incarnation) return true;
    const age = now - r.since;
    return (age >= this.opts.timings.minDrainMs && (member.inFlight[r.key] ?? 0) === 0) || age >= this.opts.timings.drainTimeoutMs;
  }

  private async finishDrain(r: SharedReplica): Promise<void> {
    this.stopping.add(r.key);
    try {
      await this.stopOnNode(r);
      await this.commit((rec) => {
        rec.replicas = rec.replicas.filter((x) => x.key !== r.key);
      });
    } finally {
      this.stopping.delete(r.key);
    }
  }

  /** New replica entries on the nodes with room (shared-placement.ts). */
  private choose(count: number): SharedReplica[] {
    return chooseSharedReplicas({
      endpoint: this.name,
      version: this.stored.version,
      config: this.stored.config,
      count,
      nodes: this.opts.cluster.nodes().filter((n) => this.opts.cluster.membership.isRoutable(n.name)),
      occupied: (node) => this.opts.occupied(node),
      newKey: () => nuid.next(),
      now: Date.now(),
    });
  }

  private fence(): Fence {
    return { endpoint: this.name, token: this.token };
  }

  private async placeOnNode(r: SharedReplica): Promise<void> {
    this.placing.add(r.key);
    const stored = this.stored;
    const req: PlaceRequest = {
      key: r.key,
      gateway: this.opts.cluster.gatewayId,
      incarnation: r.incarnation,
      replicaId: r.replicaId,
      endpoint: this.name,
      device: r.device,
      region: r.region,
      ...(stored.predictor ? { predictor: stored.predictor } : {}),
      ...(stored.model ? { model: stored.model } : {}),
      settings: stored.config.settings,
      produces: stored.config.produces,
      keepFiles: stored.config.keep_files,
      fence: this.fence(),
    };
    let error: string | undefined;
    try {
      const msg = await this.opts.cluster.connection.nc.request(this.opts.cluster.connection.subjects.place(r.node), pack(req), { timeout: this.opts.timings.placementTimeoutMs });
      const reply = unpack<PlaceReply>(msg.data);
      if (!reply.ok) error = reply.error.message;
    } catch (err) {
      error = (err as Error).message;
    } finally {
      this.placing.delete(r.key);
    }
    if (error === undefined) {
      const ok = await this.commit((rec) => {
        const x = rec.replicas.find((y) => y.key === r.key);
        if (x && x.state === 'starting') Object.assign(x, { state: 'ready', since: Date.now() });
      });
      if (ok) {
        this.lastError = undefined;
        this.startFailures = 0;
      }
      this.opts.log('info', 'replica ready', { endpoint: this.name, replica: r.replicaId, node: r.node });
      return;
    }
    this.lastError = error;
    this.startFailures++;
    this.nextStartAt = Date.now() + Math.min(30_000, 250 * 2 ** this.startFailures);
    this.opts.log('error', 'replica failed to start', { endpoint: this.name, replica: r.replicaId, error });
    void this.stopOnNode(r);
    await this.commit((rec) => {
      rec.replicas = rec.replicas.filter((x) => x.key !== r.key);
    });
  }

  private async stopOnNode(r: SharedReplica): Promise<void> {
    try {
      await this.opts.cluster.connection.nc.request(this.opts.cluster.connection.subjects.stop(r.node), pack({ key: r.key, fence: this.fence() }), { timeout: 5_000 });
    } catch {
      // A dead or unreachable node has no replica left to stop.
    }
  }
}
