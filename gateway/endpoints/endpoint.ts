/**
 * An endpoint at run time: its replicas, the bounded queue in front of them, and the life of each
 * request from admission to its last frame. Routing is `pickReplica`; counting is the
 * ConcurrencyTracker; this class only applies them.
 *
 * Fail-over: a unary request whose replica is lost goes back to the front of the queue and runs
 * elsewhere within its deadline (idempotent endpoints); a stream that already started ends with
 * SY_REPLICA_LOST. Scale-down drains: a draining replica takes no new request and stops once its
 * in-flight ones are done.
 */
import { randomBytes } from 'node:crypto';
import { close } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { AutoscalingConfig, EndpointConfig } from '../config/schema.js';
import type { ScalableEndpoint } from '../autoscaler/controller.js';
import type { ScalingSignals } from '../autoscaler/signals.js';
import { fromWire, isRetryable, SwitchyardError } from '../../workers/protocol/errors.js';
import { ConcurrencyTracker } from '../autoscaler/concurrency-tracker.js';
import { DeadlineHeap } from '../routing/deadline-heap.js';
import { pickReplica } from '../routing/pick-replica.js';
import type { ReplyFrame } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { Call } from './call.js';
import { Replica } from './replica.js';
import { STREAM_TIMEOUT_MESSAGES, StreamWatch, streamTimeoutsFor } from './stream-deadlines.js';

export interface EndpointObserver {
  /** A request finished (any outcome); `status` is the HTTP status it maps to. */
  onFinished(endpoint: string, status: number, latencyMs: number): void;
  onLog(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

/** Creates links for new replicas of an endpoint; locally worker threads, remotely node agents. */
export interface ReplicaFactory {
  /** Up to `count` new links (fewer when the devices are full). */
  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[];
  /** A link it created is gone (stopped, failed or lost): its device slot is free again. */
  released?(link: ReplicaLink): void;
}

const MAX_ATTEMPTS = 3;
const newStreamId = (): string => randomBytes(15).toString('base64url');
const STREAM_CREDIT_BATCH = 4;
const DEADLINE_SWEEP_MS = 20;
const MAX_START_BACKOFF_MS = 30_000;

export class Endpoint implements ScalableEndpoint {
  readonly replicas: Replica[] = [];
  readonly tracker = new ConcurrencyTracker();
  desired: number;
  private queue: Call[] = [];
  private queueHead = 0;
  private readonly deadlines = new DeadlineHeap<Call>();
  private readonly streams = new StreamWatch<Call>();
  private readonly sweeper: NodeJS.Timeout;
  private startFailures = 0;
  private nextStartAt = 0;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private closed = false;
  lastStartError: string | undefined;
  /** Called when a request arrives and no replica is live (scale from zero). */
  onColdStart: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly config: EndpointConfig,
    private readonly factory: ReplicaFactory,
    private readonly observer: EndpointObserver,
  ) {
    this.desired = config.autoscaling ? Math.max(config.autoscaling.min_replicas, Math.min(config.replicas, config.autoscaling.max_replicas)) : config.replicas;
    this.sweeper = setInterval(() => this.sweepDeadlines(), DEADLINE_SWEEP_MS);
    this.sweeper.unref();
  }

  // ---- admission -------------------------------------------------------------------------

  get queued(): number {
    return this.tracker.queued;
  }

  get inFlight(): number {
    return this.tracker.inFlight;
  }

  /** Replicas that exist or are coming (not draining, not gone). */
  get live(): number {
    let n = 0;
    for (const r of this.replicas) if (r.state === 'ready' || r.state === 'starting') n++;
    return n;
  }

  get readyCount(): number {
    let n = 0;
    for (const r of this.replicas) if (r.state === 'ready') n++;
    return n;
  }

  submit(call: Call): void {
    if (this.closed) {
      this.fail(call, new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down'));
      return;
    }
    const replica = this.tracker.queued === 0 ? pickReplica(this.replicas, call.regions) : undefined;
    if (replica) {
      this.tracker.admitted();
      replica.assign(call, performance.now());
      this.deadlines.push(call);
      return;
    }
    if (this.tracker.queued >= this.config.max_queue) {
      this.observer.onFinished(this.name, 503, 0);
      call.state = 'done';
      call.sink.onError(new SwitchyardError('SY_QUEUE_FULL', `endpoint "${this.name}" is at capacity (${this.config.max_queue} queued)`, { retryAfterS: 1 }));
      return;
    }
    const cold = this.live === 0;
    if (cold && this.desired === 0 && !this.onColdStart) {
      this.fail(call, new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no replicas`));
      return;
    }
    this.tracker.enqueued();
    this.queue.push(call);
    this.deadlines.push(call);
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
      this.tracker.abandoned();
    } else if (replica) {
      this.cancelOn(replica, call);
      this.release(call, replica, false);
    }
    call.state = 'done';
    this.observer.onFinished(this.name, 499, performance.now() - call.startedAt);
  }

  /** Stops a request on its replica; one still waiting for this turn's batch is simply not sent. */
  private cancelOn(replica: Replica, call: Call): void {
    if (!replica.withdraw(call)) replica.link.control({ t: 'cancel', id: call.id });
  }

  /** The sink wrote a stream chunk to its client: return credit to the replica. */
  ack(call: Call): void {
    if (call.state !== 'streaming' || !call.replica) return;
    call.unacked--;
    // One credit per acknowledged chunk, returned in batches: the replica never runs further
    // ahead of the client than its initial credit.
    this.streams.progress(call, performance.now());
    if (++call.acked === STREAM_CREDIT_BATCH) {
      call.acked = 0;
      call.replica.link.control({ t: 'credit', id: call.id, n: STREAM_CREDIT_BATCH });
    }
  }

  /** Hands queued requests to replicas with room. */
  pump(): void {
    while (this.queueHead < this.queue.length) {
      const call = this.queue[this.queueHead]!;
      if (call.state !== 'queued') {
        this.queueHead++;
        continue;
      }
      const replica = pickReplica(this.replicas, call.regions);
      if (!replica) break;
      this.queueHead++;
      this.tracker.dequeued();
      replica.assign(call, performance.now());
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private requeueFront(call: Call): void {
    call.state = 'queued';
    this.tracker.enqueued();
    this.tracker.arrivals--;
    if (this.queueHead > 0) this.queue[--this.queueHead] = call;
    else this.queue.unshift(call);
  }

  // ---- replies ---------------------------------------------------------------------------

  private onFrames(replica: Replica, frames: ReplyFrame[]): void {
    const now = performance.now();
    for (const frame of frames) {
      const call = replica.calls.get(frame.id);
      if (!call) {
        // Its request was cancelled or timed out while the file was being written.
        if (frame.t === 'file') {
          close(frame.fd, () => undefined);
          if (frame.remove) void unlink(frame.path).catch(() => undefined);
        }
        continue;
      }
      switch (frame.t) {
        case 'result':
          this.release(call, replica, true, now);
          call.state = 'done';
          this.observer.onFinished(this.name, 200, now - call.startedAt);
          call.sink.onResult(frame.body, frame.contentType);
          break;
        case 'file':
          this.release(call, replica, true, now);
          call.state = 'done';
          this.observer.onFinished(this.name, 200, now - call.startedAt);
          call.sink.onFile(frame.path, frame.size, frame.contentType, frame.remove, frame.fd);
          break;
        case 'start':
          call.state = 'streaming';
          call.unacked = 0;
          call.acked = 0;
          call.streamId ??= newStreamId();
          this.streams.started(call, () => streamTimeoutsFor(this.config));
          call.sink.onStreamStart(call.streamId);
          break;
        case 'chunk':
          call.unacked++;
          this.streams.progress(call, now);
          call.sink.onChunk(frame.data, ++call.seq);
          break;
        case 'end':
          this.release(call, replica, false, now);
          call.state = 'done';
          this.observer.onFinished(this.name, 200, now - call.startedAt);
          call.sink.onStreamEnd();
          break;
        case 'error': {
          const err = fromWire(frame.error);
          this.release(call, replica, false, now);
          if (this.mayRetry(call, err.code)) {
            this.requeueFront(call);
          } else {
            this.fail(call, err);
          }
          break;
        }
      }
    }
    this.pump();
  }

  private release(call: Call, replica: Replica, learn: boolean, now = performance.now()): void {
    if (!replica.calls.has(call.id)) return;
    if (call.state === 'streaming') this.streams.ended(call);
    replica.release(call, learn ? now : call.dispatchedAt + replica.latencyMs);
    this.tracker.finished();
    if (replica.state === 'draining' && replica.inFlight === 0) void this.stopReplica(replica);
  }

  private mayRetry(call: Call, code: string): boolean {
    return (
      isRetryable(code) &&
      call.state === 'running' &&
      this.config.idempotent &&
      call.attempts < MAX_ATTEMPTS &&
      call.deadline > Date.now() &&
      !this.closed
    );
  }

  private fail(call: Call, err: SwitchyardError): void {
    if (call.state === 'done') return;
    if (call.state === 'queued') this.tracker.abandoned();
    call.state = 'done';
    this.observer.onFinished(this.name, err.status, performance.now() - call.startedAt);
    call.sink.onError(err);
  }

  private sweepDeadlines(): void {
    if (this.streams.size > 0) this.sweepStreams();
    if (this.deadlines.size === 0) return;
    for (const call of this.deadlines.popExpired(Date.now())) {
      const replica = call.replica;
      if (call.state === 'running' && replica) {
        this.cancelOn(replica, call);
        this.release(call, replica, false);
      }
      this.fail(call, new SwitchyardError('SY_DEADLINE_EXCEEDED', 'the request did not finish before its deadline; the work was aborted'));
    }
    this.pump();
  }

  private sweepStreams(): void {
    for (const { call, code, limitMs } of this.streams.expired(performance.now())) {
      const replica = call.replica;
      if (replica) {
        this.cancelOn(replica, call);
        this.release(call, replica, false);
      }
      this.fail(call, new SwitchyardError(code, STREAM_TIMEOUT_MESSAGES[code](limitMs)));
    }
  }

  // ---- autoscaling seam ------------------------------------------------------------------

  get autoscaling(): AutoscalingConfig {
    return this.config.autoscaling!;
  }

  signals(): ScalingSignals {
    let ready = 0;
    let starting = 0;
    let draining = 0;
    for (const r of this.replicas) {
      if (r.state === 'ready') ready++;
      else if (r.state === 'starting') starting++;
      else if (r.state === 'draining') draining++;
    }
    const concurrencyIntegral = this.tracker.concurrencyIntegral();
    return {
      now: performance.now(),
      concurrencyIntegral,
      arrivals: this.tracker.arrivals,
      inFlight: this.tracker.inFlight,
      queued: this.tracker.queued,
      replicas: { ready, starting, draining },
    };
  }

  // ---- replica lifecycle -----------------------------------------------------------------

  /** Sets the replica count the endpoint should converge to (the autoscaler's seam). */
  scaleTo(desired: number, reason: string): void {
    if (desired === this.desired) return;
    this.observer.onLog('info', 'scale', { endpoint: this.name, from: this.desired, to: desired, reason });
    this.desired = desired;
    this.reconcile();
  }

  reconcile(): void {
    if (this.closed) return;
    let live = this.live;
    if (live < this.desired) {
      const wait = this.nextStartAt - Date.now();
      if (wait > 0) {
        if (!this.reconcileTimer) {
          this.reconcileTimer = setTimeout(() => {
            this.reconcileTimer = undefined;
            this.reconcile();
          }, wait);
          this.reconcileTimer.unref();
        }
        return;
      }
      const links = this.factory.create(this.name, this.config, this.desired - live);
      if (links.length < this.desired - live) {
        this.observer.onLog('warn', 'no device has room for more replicas', { endpoint: this.name, wanted: this.desired - live, placed: links.length });
      }
      for (const link of links) this.startReplica(link);
      return;
    }
    // Too many: stop those still starting first, then drain the least busy ready ones.
    const candidates = this.replicas
      .filter((r) => r.state === 'starting' || r.state === 'ready')
      .sort((a, b) => (a.state === b.state ? a.inFlight - b.inFlight : a.state === 'starting' ? -1 : 1));
    for (const replica of candidates) {
      if (live <= this.desired) break;
      this.drainReplica(replica);
      live--;
    }
  }

  private startReplica(link: ReplicaLink): void {
    const replica = new Replica(link, this.config.max_concurrency);
    this.replicas.push(replica);
    link
      .start({
        onFrames: (frames) => this.onFrames(replica, frames),
        onLost: (reason) => this.onReplicaLost(replica, reason),
      })
      .then(
        () => {
          if (replica.state !== 'starting') {
            void link.stop();
            return;
          }
          replica.state = 'ready';
          this.startFailures = 0;
          this.lastStartError = undefined;
          this.observer.onLog('info', 'replica ready', { endpoint: this.name, replica: replica.id, device: link.device, node: link.node });
          this.pump();
        },
        (err: Error) => {
          // Drained or stopped while it was starting: not a failed start.
          if (replica.state !== 'starting') return;
          replica.state = 'failed';
          replica.lastError = err.message;
          this.lastStartError = err.message;
          this.removeReplica(replica);
          this.startFailures++;
          this.nextStartAt = Date.now() + Math.min(MAX_START_BACKOFF_MS, 250 * 2 ** this.startFailures);
          this.observer.onLog('error', 'replica failed to start', { endpoint: this.name, replica: replica.id, error: err.message });
          if (this.live === 0) this.failQueued(new SwitchyardError('SY_NO_REPLICA', `endpoint "${this.name}" has no ready replica: ${err.message}`, { retryAfterS: 1 }));
          this.reconcile();
        },
      );
  }

  /** No new requests; stops once the in-flight ones finished. */
  drainReplica(replica: Replica): void {
    if (replica.state !== 'ready' && replica.state !== 'starting') return;
    const wasStarting = replica.state === 'starting';
    replica.state = 'draining';
    this.observer.onLog('info', 'replica draining', { endpoint: this.name, replica: replica.id, inFlight: replica.inFlight });
    if (wasStarting || replica.inFlight === 0) void this.stopReplica(replica);
  }

  private async stopReplica(replica: Replica): Promise<void> {
    if (replica.state === 'stopped') return;
    replica.state = 'stopped';
    this.removeReplica(replica);
    try {
      await replica.link.stop();
    } catch (err) {
      this.observer.onLog('warn', 'replica stop failed', { endpoint: this.name, replica: replica.id, error: (err as Error).message });
    }
  }

  private onReplicaLost(replica: Replica, reason: string): void {
    if (replica.state === 'stopped' || replica.state === 'failed') return;
    this.observer.onLog('warn', 'replica lost', { endpoint: this.name, replica: replica.id, reason, inFlight: replica.inFlight });
    replica.state = 'failed';
    replica.lastError = reason;
    this.removeReplica(replica);
    const err = new SwitchyardError('SY_REPLICA_LOST', `the replica serving this request was lost: ${reason}`);
    for (const call of [...replica.calls.values()]) {
      this.release(call, replica, false);
      if (this.mayRetry(call, err.code)) this.requeueFront(call);
      else this.fail(call, err);
    }
    this.reconcile();
    this.pump();
  }

  private removeReplica(replica: Replica): void {
    const i = this.replicas.indexOf(replica);
    if (i >= 0) {
      this.replicas.splice(i, 1);
      this.factory.released?.(replica.link);
    }
  }

  private failQueued(err: SwitchyardError): void {
    while (this.queueHead < this.queue.length) {
      const call = this.queue[this.queueHead++]!;
      if (call.state === 'queued') this.fail(call, err);
    }
  }

  // ---- shutdown --------------------------------------------------------------------------

  /** Refuses new requests; resolves when nothing is queued or in flight, or after `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    this.closed = true;
    const until = Date.now() + graceMs;
    while ((this.tracker.inFlight > 0 || this.tracker.queued > 0) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    const err = new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down');
    this.failQueued(err);
    // Whatever outlived the grace period is answered, not left hanging.
    for (const replica of this.replicas) {
      for (const call of [...replica.calls.values()]) {
        this.cancelOn(replica, call);
        this.release(call, replica, false);
        this.fail(call, err);
      }
    }
    await Promise.all([...this.replicas].map((r) => this.stopReplica(r)));
  }
}
