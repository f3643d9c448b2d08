/**
 * An endpoint at run time: the life of each request from admission to its last frame. The parts
 * are their own nouns: the queue in front of the replicas (AdmissionQueue), the replicas and their
 * lifecycle (ReplicaSet), frames applied to requests (ReplyDispatcher), deadlines (DeadlineSweep);
 * routing is `pickReplica` and counting the ConcurrencyTracker. This class composes them and
 * decides what happens to a request at each turn.
 *
 * Fail-over: a unary request whose replica is lost goes back to the front of the queue and runs
 * elsewhere within its deadline (idempotent endpoints); a stream that already started continues on
 * another replica when its predictor is resumable (stream-resume.ts), else ends with
 * SY_REPLICA_LOST. Scale-down drains: a draining replica takes no new request and stops once its
 * in-flight ones are done.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AutoscalingConfig, EndpointConfig } from '../config/schema.js';
import type { ScalableEndpoint } from '../autoscaler/controller.js';
import type { ScalingSignals } from '../autoscaler/signals.js';
import { isRetryable, SwitchyardError } from '../../workers/protocol/errors.js';
import { ConcurrencyTracker } from '../autoscaler/concurrency-tracker.js';
import { AdmissionQueue } from './admission-queue.js';
import type { Call } from './call.js';
import { systemClock, type Clock } from './clock.js';
import { DeadlineSweep } from './deadline-sweep.js';
import type { Replica } from './replica.js';
import { ReplicaSet, type NodeChange, type ReplicaFactory } from './replica-set.js';
import { ReplyDispatcher, type CallOutcomes } from './reply-dispatcher.js';
import { STREAM_TIMEOUT_MESSAGES, StreamWatch, streamTimeoutsFor } from './stream-deadlines.js';
import { canResume, prepareResume } from './stream-resume.js';

export type { ReplicaFactory } from './replica-set.js';

export interface EndpointObserver {
  /** A request finished (any outcome); `status` is the HTTP status it maps to. */
  onFinished(endpoint: string, status: number, latencyMs: number): void;
  onLog(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

/** What `GET /v1/endpoints` shows of an endpoint's runtime. */
export interface EndpointView {
  desired: number;
  inFlight: number;
  queued: number;
  admitted: number;
  completed: number;
  lastStartError?: string;
  replicas: ReplicaView[];
}

export interface ReplicaView {
  id: string;
  state: string;
  device: string;
  node: string;
  region: string;
  in_flight: number;
  /** Streams waiting for their client to read: they hold no slot. */
  parked: number;
  served: number;
  latency_ms: number;
  started_at: string;
}

const MAX_ATTEMPTS = 3;

const clusterUnavailable = (endpoint: string): SwitchyardError =>
  new SwitchyardError('SY_CLUSTER_UNAVAILABLE', `endpoint "${endpoint}" is served by node agents and the gateway's NATS connection is down`, { retryAfterS: 1 });
const DRAIN_POLL_MS = 20;

export class Endpoint implements ScalableEndpoint {
  private readonly tracker: ConcurrencyTracker;
  private readonly queue: AdmissionQueue;
  private readonly replicaSet: ReplicaSet;
  private readonly dispatcher: ReplyDispatcher;
  private readonly deadlines: DeadlineSweep;
  private readonly streams = new StreamWatch<Call>();
  private closed = false;
  /** The gateway's NATS connection is down: node agents' replicas are out of reach. */
  private clusterDown = false;
  /** Called when a request arrives and no replica is live (scale from zero). */
  onColdStart: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly config: EndpointConfig,
    factory: ReplicaFactory,
    private readonly observer: EndpointObserver,
    private readonly clock: Clock = systemClock,
  ) {
    this.tracker = new ConcurrencyTracker(() => clock.now());
    this.queue = new AdmissionQueue(this.tracker);
    const outcomes: CallOutcomes = {
      release: (call, replica, learnAt) => this.release(call, replica, learnAt),
      finished: (call, status, now) => this.finished(call, status, now),
      failOrRetry: (call, err) => this.failOrRetry(call, err),
      streamStarted: (call) => {
        this.streams.started(call, () => streamTimeoutsFor(this.config));
        this.deadlines.wake();
      },
      streamProgress: (call, now) => this.streams.progress(call, now),
      pump: () => this.pump(),
    };
    this.dispatcher = new ReplyDispatcher(outcomes, () => clock.now());
    this.replicaSet = new ReplicaSet(name, config, factory, clock, {
      onFrames: (replica, frames) => this.dispatcher.dispatch(replica, frames),
      onReady: () => this.pump(),
      onStartFailed: (err, live) => {
        if (live === 0) this.failQueued(new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no ready replica: ${err.message}`, { retryAfterS: 1 }));
      },
      onLost: (replica, reason) => this.onReplicaLost(replica, reason),
      onLog: (level, msg, fields) => observer.onLog(level, msg, fields),
    });
    const streams = this.streams;
    this.deadlines = new DeadlineSweep(
      clock,
      (call) => this.expire(call),
      () => this.pump(),
      [
        {
          get size() {
            return streams.size;
          },
          sweep: () => this.sweepStreams(),
        },
      ],
    );
  }

  // ---- what others read ------------------------------------------------------------------

  get queued(): number {
    return this.tracker.queued;
  }

  get inFlight(): number {
    return this.tracker.inFlight;
  }

  /** The replica count the endpoint converges to. */
  get desired(): number {
    return this.replicaSet.desired;
  }

  /** Every replica that still exists (starting, ready or draining), read-only. */
  get replicas(): readonly Replica[] {
    return this.replicaSet.all;
  }

  get readyCount(): number {
    return this.replicaSet.counts().ready;
  }

  /** Why the last replica start failed, until one starts. */
  get lastStartError(): string | undefined {
    return this.replicaSet.lastStartError;
  }

  view(): EndpointView {
    const lastStartError = this.replicaSet.lastStartError;
    return {
      desired: this.desired,
      inFlight: this.tracker.inFlight,
      queued: this.tracker.queued,
      admitted: this.tracker.arrivals,
      completed: this.tracker.completed,
      ...(lastStartError === undefined ? {} : { lastStartError }),
      replicas: this.replicaSet.all.map((r) => ({
        id: r.id,
        state: r.state,
        device: r.link.device,
        node: r.link.node,
        region: r.link.region,
        in_flight: r.inFlight,
        parked: r.calls.size - r.inFlight,
        served: r.served,
        latency_ms: Math.round(r.latencyMs * 1000) / 1000,
        started_at: new Date(r.startedAt).toISOString(),
      })),
    };
  }

  // ---- admission -------------------------------------------------------------------------

  submit(call: Call): void {
    if (this.closed) {
      this.fail(call, new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down'));
      return;
    }
    const replica = this.queue.size === 0 ? this.replicaSet.pick(call.regions) : undefined;
    if (replica) {
      this.tracker.admitted();
      replica.assign(call, this.clock.now());
      this.deadlines.track(call);
      return;
    }
    if (this.queue.size >= this.config.max_queue) {
      this.observer.onFinished(this.name, 503, 0);
      call.state = 'done';
      call.sink.onError(new SwitchyardError('SY_QUEUE_FULL', `endpoint "${this.name}" is at capacity (${this.config.max_queue} queued)`, { retryAfterS: 1 }));
      return;
    }
    if (this.clusterDown && !this.servesLocally()) {
      this.fail(call, clusterUnavailable(this.name));
      return;
    }
    const cold = this.replicaSet.live === 0;
    if (cold && this.desired === 0 && !this.onColdStart) {
      this.fail(call, new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no replicas`));
      return;
    }
    this.queue.push(call);
    this.deadlines.track(call);
    // Entries ahead of it may be stale (cancelled, expired) while a replica has room.
    this.pump();
    // Scale from zero: the request waits in the queue (bounded by its deadline) while a replica starts.
    if (cold) this.onColdStart?.();
  }

  /** The client went away or cancelled: stop the work, answer nothing. */
  cancel(call: Call): void {
    if (call.state === 'done') return;
    const replica = call.replica;
    if (call.state === 'queued') {
      this.queue.abandon();
    } else if (replica) {
      this.cancelOn(replica, call);
      this.release(call, replica);
    }
    call.state = 'done';
    this.observer.onFinished(this.name, 499, this.clock.now() - call.startedAt);
  }

  /** The sink wrote a stream chunk to its client: return credit to the replica. */
  ack(call: Call): void {
    this.dispatcher.ack(call);
  }

  /** Hands queued requests to replicas with room. */
  pump(): void {
    for (let call = this.queue.peek(); call; call = this.queue.peek()) {
      const replica = this.replicaSet.pick(call.regions);
      if (!replica) break;
      this.queue.take(call);
      replica.assign(call, this.clock.now());
    }
  }

  // ---- outcomes --------------------------------------------------------------------------

  /** Stops a request on its replica; one still waiting for this turn's batch is simply not sent. */
  private cancelOn(replica: Replica, call: Call): void {
    if (!replica.withdraw(call)) replica.link.control({ t: 'cancel', id: call.id });
  }

  private release(call: Call, replica: Replica, learnAt?: number): void {
    if (!replica.calls.has(call.id)) return;
    if (call.state === 'streaming') this.streams.ended(call);
    // Without `learnAt` the sample is the replica's own average: it learns nothing.
    replica.release(call, learnAt ?? call.dispatchedAt + replica.latencyMs);
    this.tracker.finished();
    this.replicaSet.released(replica);
  }

  private finished(call: Call, status: number, now: number): void {
    call.state = 'done';
    this.observer.onFinished(this.name, status, now - call.startedAt);
  }

  private failOrRetry(call: Call, err: SwitchyardError): void {
    if (this.mayRetry(call, err.code)) this.queue.pushFront(call);
    else this.fail(call, err);
  }

  private mayRetry(call: Call, code: string): boolean {
    return (
      isRetryable(code) &&
      call.state === 'running' &&
      this.config.idempotent &&
      call.attempts < MAX_ATTEMPTS &&
      call.deadline > this.clock.wallMs() &&
      !this.closed
    );
  }

  private fail(call: Call, err: SwitchyardError): void {
    if (call.state === 'done') return;
    if (call.state === 'queued') this.queue.abandon();
    call.state = 'done';
    this.observer.onFinished(this.name, err.status, this.clock.now() - call.startedAt);
    call.sink.onError(err);
  }

  private failQueued(err: SwitchyardError): void {
    for (const call of this.queue.takeAll()) this.fail(call, err);
  }

  private expire(call: Call): void {
    const replica = call.replica;
    if (call.state === 'running' && replica) {
      this.cancelOn(replica, call);
      this.release(call, replica);
    }
    this.fail(call, new SwitchyardError('SY_DEADLINE_EXCEEDED', 'the request did not finish before its deadline; the work was aborted'));
  }

  private sweepStreams(): void {
    const expired = this.streams.expired(this.clock.now());
    for (const { call, code, limitMs } of expired) {
      const replica = call.replica;
      if (replica) {
        this.cancelOn(replica, call);
        this.release(call, replica);
      }
      this.fail(call, new SwitchyardError(code, STREAM_TIMEOUT_MESSAGES[code](limitMs)));
    }
    if (expired.length > 0) this.pump();
  }

  private onReplicaLost(replica: Replica, reason: string): void {
    const err = new SwitchyardError('SY_REPLICA_LOST', `the replica serving this request was lost: ${reason}`);
    for (const call of [...replica.calls.values()]) {
      this.release(call, replica);
      if (canResume(call, this.closed)) {
        prepareResume(call, this.clock.wallMs());
        this.observer.onLog('info', 'stream resumes on another replica', { endpoint: this.name, replica: replica.id, stream: call.streamId, delivered: call.seq });
        this.queue.pushFront(call);
        this.deadlines.track(call);
      } else {
        this.failOrRetry(call, err);
      }
    }
    this.pump();
  }

  // ---- cluster outage --------------------------------------------------------------------

  /** Whether a replica on this machine is ready or starting: it serves while NATS is down. */
  private servesLocally(): boolean {
    return this.replicaSet.all.some((r) => !r.remote && (r.state === 'ready' || r.state === 'starting'));
  }

  /**
   * The gateway's NATS connection went down or came back. Down: node agents' replicas take no new
   * work, what they were doing is retried here (unary, idempotent) or failed at once (nothing would
   * reach the client through NATS), and requests only node agents could serve get 503 at once.
   */
  setClusterReachable(reachable: boolean): void {
    this.clusterDown = !reachable;
    for (const replica of this.replicaSet.all) if (replica.remote) replica.unreachable = !reachable;
    if (reachable) {
      this.pump();
      return;
    }
    const err = clusterUnavailable(this.name);
    for (const replica of this.replicaSet.all) {
      if (!replica.remote) continue;
      for (const call of [...replica.calls.values()]) {
        this.cancelOn(replica, call);
        this.release(call, replica);
        this.failOrRetry(call, err);
      }
    }
    if (!this.servesLocally()) this.failQueued(err);
    this.pump();
  }

  // ---- replicas --------------------------------------------------------------------------

  /** Sets the replica count the endpoint should converge to (the autoscaler's seam). */
  scaleTo(desired: number, reason: string): void {
    this.replicaSet.scaleTo(desired, reason);
  }

  reconcile(): void {
    if (this.closed) return;
    this.replicaSet.reconcile();
  }

  /** No new requests to `replica`; it stops once its in-flight ones finished (a federation's leader retired it). */
  drainReplica(replica: Replica): void {
    this.replicaSet.drain(replica);
  }

  /** The one way membership reaches an endpoint: a node changed (see ReplicaSet.onNodeChange). */
  onNodeChange(node: string, change: NodeChange, place: boolean): void {
    this.replicaSet.onNodeChange(node, change, place && !this.closed);
    if (change === 'recovered') this.pump();
  }

  // ---- autoscaling seam ------------------------------------------------------------------

  get autoscaling(): AutoscalingConfig {
    return this.config.autoscaling!;
  }

  signals(): ScalingSignals {
    return {
      now: this.clock.now(),
      concurrencyIntegral: this.tracker.concurrencyIntegral(),
      arrivals: this.tracker.arrivals,
      inFlight: this.tracker.inFlight,
      queued: this.tracker.queued,
      replicas: this.replicaSet.counts(),
    };
  }

  // ---- shutdown --------------------------------------------------------------------------

  /**
   * Refuses new requests; resolves when nothing is queued or in flight, or after `graceMs`. Polls
   * on real timers that keep the process alive: shutdown must not end early.
   */
  async drain(graceMs: number): Promise<void> {
    this.closed = true;
    const until = Date.now() + graceMs;
    while ((this.tracker.inFlight > 0 || this.tracker.queued > 0) && Date.now() < until) await delay(DRAIN_POLL_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.deadlines.stop();
    this.replicaSet.close();
    const err = new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down');
    this.failQueued(err);
    // Whatever outlived the grace period is answered, not left hanging.
    for (const replica of [...this.replicaSet.all]) {
      for (const call of [...replica.calls.values()]) {
        this.cancelOn(replica, call);
        this.release(call, replica);
        this.fail(call, err);
      }
    }
    await this.replicaSet.stopAll();
  }
}
