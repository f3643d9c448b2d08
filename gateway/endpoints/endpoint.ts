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
 * SY_REPLICA_LOST. A unary request whose messages may have been lost when a NATS server died (the
 * gateway or the replica's node reconnected to another one) is sent again the same way.
 * Scale-down drains: a draining replica takes no new request and stops once its
 * in-flight ones are done.
 *
 * A request past its deadline is answered 504 at once and cancelled on its replica; the time it
 * held the replica counts in the replica's latency, so a replica that stops answering never looks
 * fast. A replica that does not confirm the cancel within `abort_grace_ms` is wedged: terminated
 * and replaced, its other requests retried. While replicas keep dying or failing to start and
 * none is ready or starting, requests are answered 503 + Retry-After at once instead of waiting
 * (or starting a thread each); why the starts fail goes to the logs and `/v1/endpoints` only.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AutoscalingConfig, EndpointConfig } from '../config/schema.js';
import type { ScalableEndpoint } from '../autoscaler/controller.js';
import type { ScalingSignals } from '../autoscaler/signals.js';
import { isRetryable, SwitchyardError } from '../../workers/protocol/errors.js';
import { ConcurrencyTracker } from '../autoscaler/concurrency-tracker.js';
import { AdmissionQueue } from './admission-queue.js';
import type { Call, CallSink } from './call.js';
import { systemClock, type Clock } from './clock.js';
import { DeadlineSweep } from './deadline-sweep.js';
import type { Replica } from './replica.js';
import { ReplicaSet, type NodeChange, type ReplacementReason, type ReplicaFactory } from './replica-set.js';
import { ReplyDispatcher, type CallOutcomes } from './reply-dispatcher.js';
import { STREAM_TIMEOUT_MESSAGES, StreamWatch, streamTimeoutsFor } from './stream-deadlines.js';
import { canResume, prepareResume } from './stream-resume.js';
import { StreamRegistry } from './stream-reconnect.js';

export type { ReplicaFactory } from './replica-set.js';

export interface EndpointObserver {
  /** A request finished (any outcome); `status` is the HTTP status it maps to. */
  onFinished(endpoint: string, status: number, latencyMs: number): void;
  onLog(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** A replica was given up on (lost or wedged), or survived a predictor fault. */
  onReplicaEvent?(endpoint: string, event: ReplacementReason | 'unhandled_rejection'): void;
}

/** What `GET /v1/endpoints` shows of an endpoint's runtime. */
export interface EndpointView {
  desired: number;
  inFlight: number;
  queued: number;
  admitted: number;
  completed: number;
  lastStartError?: string;
  /** Replicas given up on since start, by reason. */
  replaced: Record<ReplacementReason, number>;
  /** Consecutive failed starts (0 once one starts). */
  startFailures: number;
  /** How long until the next replica start may be attempted, while restarts back off. */
  restartInMs: number;
  /** Promises the predictor rejected with no handler (logged; the replica kept serving). */
  unhandledRejections: number;
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
  private unhandledRejections = 0;
  /** Set once the endpoint left its deployment: the answer to anything that still reaches it. */
  private removedError: SwitchyardError | undefined;
  /** Streams a client may reconnect to (endpoints with stream_reconnect.grace_ms). */
  readonly reconnect: StreamRegistry | undefined;
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
    const { grace_ms, tail_bytes } = config.stream_reconnect;
    this.reconnect = grace_ms > 0 ? new StreamRegistry({ graceMs: grace_ms, tailBytes: tail_bytes }, this) : undefined;
    this.queue = new AdmissionQueue(this.tracker);
    const outcomes: CallOutcomes = {
      release: (call, replica, learnAt) => this.release(call, replica, learnAt),
      finished: (call, status, now) => this.finished(call, status, now),
      failOrRetry: (call, err) => this.failOrRetry(call, err),
      cancelConfirmed: (replica, id) => {
        if (!replica.overdue.delete(id)) return;
        this.replicaSet.released(replica);
      },
      fault: (replica, kind, message) => {
        this.unhandledRejections++;
        observer.onLog('warn', 'predictor left a promise rejection unhandled; the replica keeps serving', { endpoint: name, replica: replica.id, error: message });
        observer.onReplicaEvent?.(name, kind);
      },
      streamStarted: (call) => {
        this.streams.started(call, () => streamTimeoutsFor(this.config));
        this.deadlines.wake();
      },
      streamProgress: (call, now) => this.streams.progress(call, now),
      pump: () => this.pump(),
    };
    this.dispatcher = new ReplyDispatcher(outcomes, () => clock.now(), config.max_response_bytes);
    this.replicaSet = new ReplicaSet(name, config, factory, clock, {
      onFrames: (replica, frames) => this.dispatcher.dispatch(replica, frames),
      onReady: () => this.pump(),
      // Why it failed (the setup() error) is in the logs and /v1/endpoints, not in answers to clients.
      onStartFailed: (_err, live) => {
        if (live === 0) this.failQueued(this.unavailable());
      },
      onLost: (replica, err) => this.onReplicaLost(replica, err),
      onReplaced: (_replica, reason) => observer.onReplicaEvent?.(name, reason),
      onLog: (level, msg, fields) => observer.onLog(level, msg, fields),
    });
    const streams = this.streams;
    const replicaSet = this.replicaSet;
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
        {
          // The watchdog: replicas that owe the confirmation of a cancel.
          get size() {
            return replicaSet.awaitingConfirmation;
          },
          sweep: () => replicaSet.checkWedged(config.abort_grace_ms),
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
      replaced: { ...this.replicaSet.replaced },
      startFailures: this.replicaSet.startFailures,
      restartInMs: Math.ceil(this.replicaSet.restartWaitMs()),
      unhandledRejections: this.unhandledRejections,
      replicas: this.replicaSet.all.map((r) => ({
        id: r.id,
        state: r.state,
        device: r.link.device,
        node: r.link.node,
        region: r.link.region,
        in_flight: r.inFlight,
        parked: r.parkedCount,
        served: r.served,
        latency_ms: Math.round(r.latencyMs * 1000) / 1000,
        started_at: new Date(r.startedAt).toISOString(),
      })),
    };
  }

  // ---- admission -------------------------------------------------------------------------

  submit(call: Call): void {
    this.reconnect?.wrap(call);
    if (this.removedError) {
      this.refuse(call, this.removedError);
      return;
    }
    if (this.closed) {
      this.refuse(call, new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down'));
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
      this.refuse(call, new SwitchyardError('SY_QUEUE_FULL', `endpoint "${this.name}" is at capacity (${this.config.max_queue} queued)`, { retryAfterS: 1 }));
      return;
    }
    if (this.clusterDown && !this.servesLocally()) {
      this.refuse(call, clusterUnavailable(this.name));
      return;
    }
    const cold = this.replicaSet.live === 0;
    if (cold && this.desired === 0 && !this.onColdStart) {
      this.refuse(call, new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no replicas`));
      return;
    }
    // Nothing ready, nothing starting, and restarts backing off: waiting would only run out the
    // request's deadline.
    if (cold && this.backingOff()) {
      this.refuse(call, this.unavailable());
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
  /** `sink`'s client went away: its stream waits for a reconnect where the endpoint allows it, else is cancelled. */
  leave(call: Call, sink: CallSink): void {
    if (!this.reconnect?.detach(call, sink)) this.cancel(call);
  }

  cancel(call: Call): void {
    if (call.state === 'done') return;
    const replica = call.replica;
    if (call.state === 'queued') {
      this.queue.abandon();
    } else if (replica) {
      this.cancelOn(replica, call);
      this.release(call, replica);
    }
    call.settle();
    this.observer.onFinished(this.name, 499, this.clock.now() - call.startedAt);
  }

  /** The sink wrote `n` chunks of a stream to its client: their credit goes back to the replica. */
  ack(call: Call, n = 1): void {
    this.dispatcher.ack(call, n);
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

  /**
   * Stops a request on its replica; one still waiting for this turn's batch is simply not sent.
   * True when a cancel went to the replica.
   */
  private cancelOn(replica: Replica, call: Call): boolean {
    if (replica.withdraw(call)) return false;
    replica.link.control({ t: 'cancel', id: call.id });
    return true;
  }

  /** Restarts are backing off and no replica is ready or starting. */
  private backingOff(): boolean {
    return this.replicaSet.live === 0 && this.replicaSet.restartWaitMs() > 0;
  }

  /** The answer while the endpoint has no replica that could take a request soon; deliberately generic. */
  private unavailable(): SwitchyardError {
    const waitS = Math.max(1, Math.ceil(this.replicaSet.restartWaitMs() / 1000));
    return new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no ready replica: its replicas are failing; retry in ${waitS} s`, { retryAfterS: waitS });
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
    call.settle();
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
      !this.closed &&
      // A retry would wait for a restart that is backing off: answer now.
      !this.backingOff()
    );
  }

  private fail(call: Call, err: SwitchyardError): void {
    if (call.state === 'done') return;
    if (call.state === 'queued') this.queue.abandon();
    call.settle();
    this.observer.onFinished(this.name, err.status, this.clock.now() - call.startedAt);
    call.sink.onError(err);
  }

  /** Answers a request that was never admitted (it holds no queue slot and no token). */
  private refuse(call: Call, err: SwitchyardError): void {
    call.settle();
    this.observer.onFinished(this.name, err.status, 0);
    call.sink.onError(err);
  }

  private failQueued(err: SwitchyardError): void {
    for (const call of this.queue.takeAll()) this.fail(call, err);
  }

  private expire(call: Call): void {
    const replica = call.replica;
    if (call.state !== 'running' || !replica) {
      this.fail(call, new SwitchyardError('SY_DEADLINE_EXCEEDED', 'the request passed its deadline while waiting for a free replica'));
      return;
    }
    const sent = this.cancelOn(replica, call);
    // The time it held the replica counts: a replica that stops answering must not look fast.
    const now = this.clock.now();
    this.release(call, replica, now);
    let message = 'the request passed its deadline before it was sent to a replica';
    if (sent) {
      message = `the request passed its deadline while running on replica ${replica.id}; the replica was told to stop the work`;
      if (replica.link.confirmsCancels) {
        // Its token stays taken until the replica confirms; the watchdog replaces it if it never does.
        replica.overdue.set(call.id, now);
        this.deadlines.wake();
        message += ` and is replaced if it does not within ${this.config.abort_grace_ms} ms`;
      }
    }
    this.fail(call, new SwitchyardError('SY_DEADLINE_EXCEEDED', message));
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

  private onReplicaLost(replica: Replica, err: SwitchyardError): void {
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
    // Requests waiting for a replica would wait for a restart that is backing off. A resumed
    // stream waits for it all the same, within its fresh deadline: its client already holds part
    // of the stream, and failing it fast would lose what a short wait keeps.
    if (this.backingOff()) for (const call of this.queue.takeAll((c) => c.resumes > 0)) this.fail(call, this.unavailable());
    this.pump();
  }

  // ---- cluster outage --------------------------------------------------------------------

  /** Whether a replica on this machine is ready or starting: it serves while NATS is down. */
  private servesLocally(): boolean {
    return this.replicaSet.all.some((r) => !r.remote && (r.state === 'ready' || r.state === 'starting'));
  }

  /**
   * The gateway's NATS connection dropped and is failing over to another server of the cluster:
   * node agents' replicas take no new work (requests wait in the queue, within their deadline)
   * and what they are doing stays theirs until the connection is back (`setClusterReachable(true)`
   * then sends it again) or the failover is given up (`setClusterReachable(false)`).
   */
  clusterInterrupted(): void {
    for (const replica of this.replicaSet.all) if (replica.remote) replica.unreachable = true;
  }

  /**
   * The gateway's NATS connection went down for good or came back. Down: node agents' replicas
   * take no new work, what they were doing is retried here (unary, idempotent) or failed at once
   * (nothing would reach the client through NATS), and requests only node agents could serve get
   * 503 at once. Back: answers sent to this gateway while it was away are lost, so the unary
   * requests in flight on node agents are sent again.
   */
  setClusterReachable(reachable: boolean): void {
    this.clusterDown = !reachable;
    for (const replica of this.replicaSet.all) if (replica.remote) replica.unreachable = !reachable;
    if (reachable) {
      this.resend((replica) => replica.remote, 'the gateway reconnected to NATS');
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

  /**
   * Messages to or from these replicas may have been lost (a NATS server on their way died): the
   * unary requests in flight there are cancelled and sent again, to any replica, within their
   * deadline. Only those a retry is allowed for (idempotent endpoint, attempts left); the others
   * stay, and end with their answer or at their deadline. A request that was not lost runs twice;
   * the node forgot the cancelled copy's id, so only one answer reaches the client.
   */
  private resend(where: (replica: Replica) => boolean, why: string): void {
    const lost = new SwitchyardError('SY_REPLICA_LOST', why);
    let resent = 0;
    for (const replica of this.replicaSet.all) {
      if (!where(replica)) continue;
      for (const call of [...replica.calls.values()]) {
        if (call.state !== 'running' || !this.mayRetry(call, lost.code)) continue;
        this.cancelOn(replica, call);
        this.release(call, replica);
        this.queue.pushFront(call);
        resent++;
      }
    }
    if (resent > 0) this.observer.onLog('info', 'requests sent again after a NATS failover', { endpoint: this.name, requests: resent, why });
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
    if (change === 'reconnected') {
      this.resend((replica) => replica.remote && replica.link.node === node, `node ${node} reconnected to NATS`);
      return;
    }
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
   * The endpoint left its deployment (a federation's): requests still waiting for a replica, and
   * any that reach it from now on (a transport that looked it up a moment ago), get `err`; those
   * on a replica finish. `drain` and `close` follow.
   */
  remove(err: SwitchyardError): void {
    this.removedError = err;
    this.failQueued(err);
  }

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
