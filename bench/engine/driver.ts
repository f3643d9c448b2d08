/**
 * The load driver of one worker thread: it keeps the schedule (open loop) or its connections busy
 * (closed loop), hands requests to connections, and accounts for every request it was meant to
 * send.
 *
 * Open loop: a request is due at its intended time whatever the server does. It goes to a free
 * connection, or to a new one while fewer than the thread's share of `--max-connections` are open;
 * past that it waits for the next free connection, and the wait is reported (`waitedForConnection`)
 * as well as counted in its corrected latency, which runs from the intended send time. The
 * uncorrected latency runs from the moment the request went to a connection (a new connection's
 * handshake included). Nothing due is dropped: a request still waiting when the run's drain
 * deadline passes is reported as `unsent`.
 */
import { performance } from 'node:perf_hooks';
import { ArrivalSchedule } from './schedule.js';
import type { Channel, ChannelEvents, Outcome, RequestRecord } from './channel.js';
import { HttpChannel } from './http-channel.js';
import { WsChannel } from './ws-channel.js';
import { planDurationS, type LoadPlan } from './plan.js';
import { createCountHistogram, createLatencyHistogram, recordCount, recordMs, type Histogram } from './histograms.js';
import type { BucketReport, WorkerTotals } from './totals.js';

interface Bucket {
  scheduled: number;
  sent: number;
  ok: number;
  errors: number;
  corrected: Histogram | undefined;
  uncorrected: Histogram | undefined;
}

const SWEEP_MS = 100;
/** A closed-loop connection that could not connect waits this long before the next try. */
const RECONNECT_PAUSE_MS = 50;

export class LoadDriver implements ChannelEvents {
  private readonly startPerf: number;
  private readonly endPerf: number;
  private readonly durationMs: number;
  private readonly shareOfConnections: number;
  private readonly channels = new Set<Channel>();
  private readonly ready: Channel[] = [];
  private readonly backlog: number[] = [];
  private backlogHead = 0;
  private open = 0;
  private scheduleDone = false;
  private finished = false;
  private readonly buckets = new Map<number, Bucket>();
  /** The bucket used last and its second: most events of a turn fall in the same second. */
  private lastSecond = -1;
  private lastBucket: Bucket | undefined;
  /** Answers are streams (chunks and stream integrity are counted). */
  private readonly streamed: boolean;
  /** Requests to send again on a fresh connection (see onFinish, 'stale'). */
  private readonly retries: RequestRecord[] = [];

  private readonly totals = {
    scheduled: 0,
    sent: 0,
    sentInWindow: 0,
    waitedForConnection: 0,
    ok: 0,
    good: 0,
    errors: {} as Record<string, number>,
    unsent: 0,
    bytes: 0,
    connectionsOpened: 0,
    peakConnections: 0,
    retried: 0,
    streams: { complete: 0, truncated: 0, errorFrame: 0 },
  };
  private readonly schedulerLag = createLatencyHistogram();
  private readonly sendDelay = createLatencyHistogram();
  private readonly firstChunk = createLatencyHistogram();
  private readonly firstChunkUncorrected = createLatencyHistogram();
  private readonly chunkGap = createLatencyHistogram();
  private readonly chunksPerStream = createCountHistogram();
  private readonly bytesPerStream = createCountHistogram();
  private resolveDone: (() => void) | undefined;

  constructor(
    private readonly plan: LoadPlan,
    private readonly workerIndex: number,
    private readonly workers: number,
    private readonly onBuckets: (buckets: BucketReport[]) => void,
  ) {
    this.startPerf = plan.startAt - performance.timeOrigin;
    this.durationMs = planDurationS(plan.pacing) * 1000;
    this.endPerf = this.startPerf + this.durationMs;
    const pacing = plan.pacing;
    const total = pacing.kind === 'open' ? pacing.maxConnections : pacing.connections;
    // Spread connections over the threads; every thread gets at least one.
    this.shareOfConnections = Math.max(1, Math.floor(total / workers) + (workerIndex < total % workers ? 1 : 0));
    const target = plan.target;
    this.streamed = target.transport === 'ws' ? target.stream : target.stream !== 'none';
  }

  async run(): Promise<WorkerTotals> {
    const wait = this.startPerf - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const done = new Promise<void>((resolve) => {
      this.resolveDone = resolve;
    });
    const sweep = setInterval(() => this.sweep(), SWEEP_MS);
    const flush = setInterval(() => this.flushBuckets(false), 1000);
    if (this.plan.pacing.kind === 'open') this.runSchedule();
    else this.runClosed();
    await done;
    clearInterval(sweep);
    clearInterval(flush);
    this.flushBuckets(true);
    for (const channel of this.channels) channel.close();
    return this.report();
  }

  // ---- open loop ----

  private runSchedule(): void {
    const pacing = this.plan.pacing;
    if (pacing.kind !== 'open') return;
    const schedule = new ArrivalSchedule({ segments: pacing.segments, arrival: pacing.arrival, seed: pacing.seed, workerIndex: this.workerIndex, workers: this.workers });
    let next = schedule.next();
    const tick = (): void => {
      const now = performance.now();
      while (next !== undefined && this.startPerf + next <= now) {
        this.due(this.startPerf + next, now);
        next = schedule.next();
      }
      if (next === undefined) {
        this.scheduleDone = true;
        this.checkDone();
        return;
      }
      const wait = this.startPerf + next - performance.now();
      // Node's timers have millisecond granularity. Polling with setImmediate would be more
      // precise but burns a core between sends (an epoll round per turn), so the thread sleeps and
      // sends what is due when it wakes: up to about a millisecond late, which is measured (lag)
      // and included in corrected latencies.
      setTimeout(tick, wait > 1.5 ? wait - 1 : 0);
    };
    tick();
  }

  private due(intended: number, now: number): void {
    this.totals.scheduled++;
    this.bucket(intended).scheduled++;
    recordMs(this.schedulerLag, now - intended);
    const channel = this.takeChannel();
    if (channel) this.dispatch(channel, intended, now);
    else {
      this.totals.waitedForConnection++;
      this.backlog.push(intended);
    }
  }

  private takeChannel(): Channel | undefined {
    while (this.ready.length > 0) {
      const channel = this.ready[this.ready.length - 1]!;
      if (!channel.alive || channel.free <= 0) {
        this.ready.pop();
        channel.listed = false;
        continue;
      }
      if (channel.free === 1) {
        this.ready.pop();
        channel.listed = false;
      }
      return channel;
    }
    if (this.open < this.shareOfConnections) {
      const channel = this.openChannel();
      if (channel.free > 1) this.list(channel);
      return channel;
    }
    return undefined;
  }

  private list(channel: Channel): void {
    if (!channel.listed && channel.alive && channel.free > 0) {
      channel.listed = true;
      this.ready.push(channel);
    }
  }

  private openChannel(): Channel {
    const target = this.plan.target;
    const channel: Channel = target.transport === 'http' ? new HttpChannel(target, this) : new WsChannel(target, this);
    this.channels.add(channel);
    this.open++;
    this.totals.connectionsOpened++;
    if (this.open > this.totals.peakConnections) this.totals.peakConnections = this.open;
    return channel;
  }

  private dispatch(channel: Channel, intended: number, now: number): void {
    const request: RequestRecord = { intended, dispatched: now, firstChunkAt: 0, lastChunkAt: 0, chunks: 0, bytes: 0, errorFrame: false, ended: false, retried: false, id: '' };
    this.totals.sent++;
    if (now < this.endPerf) this.totals.sentInWindow++;
    this.bucket(now).sent++;
    recordMs(this.sendDelay, now - intended);
    channel.start(request);
  }

  private takeBacklog(): number | undefined {
    if (this.backlogHead >= this.backlog.length) return undefined;
    const intended = this.backlog[this.backlogHead++]!;
    if (this.backlogHead > 1024 && this.backlogHead * 2 > this.backlog.length) {
      this.backlog.splice(0, this.backlogHead);
      this.backlogHead = 0;
    }
    return intended;
  }

  private get backlogSize(): number {
    return this.backlog.length - this.backlogHead;
  }

  // ---- closed loop ----

  private runClosed(): void {
    for (let i = 0; i < this.shareOfConnections; i++) this.fillClosed(this.openChannel(), performance.now());
    setTimeout(() => {
      this.scheduleDone = true;
      this.checkDone();
    }, Math.max(0, this.endPerf - performance.now()));
  }

  /** `now`: the clock read when the connection became free (one read per turn of work). */
  private fillClosed(channel: Channel, now: number): void {
    while (channel.alive && channel.free > 0 && now < this.endPerf) {
      this.totals.scheduled++;
      this.bucket(now).scheduled++;
      this.dispatch(channel, now, now);
    }
  }

  // ---- channel events ----

  onChunk(_channel: Channel, request: RequestRecord, now: number): void {
    request.chunks++;
    if (request.chunks === 1) {
      recordMs(this.firstChunk, now - request.intended);
      recordMs(this.firstChunkUncorrected, now - request.dispatched);
    } else {
      recordMs(this.chunkGap, now - request.lastChunkAt);
    }
    request.lastChunkAt = now;
    if (request.firstChunkAt === 0) request.firstChunkAt = now;
  }

  onFinish(channel: Channel | undefined, request: RequestRecord, outcome: Outcome, now: number): void {
    if (outcome === 'stale' && !this.finished && !request.retried) {
      // The server closed a kept-alive connection as the request went out: a client retries on a
      // fresh connection, and the time lost stays in this request's latency.
      this.totals.retried++;
      request.retried = true;
      this.retries.push(request);
      return;
    }
    this.totals.bytes += request.bytes;
    const bucket = this.bucket(now);
    const streamed = this.streamed;
    if (outcome === 'ok') {
      this.totals.ok++;
      bucket.ok++;
      const corrected = now - request.intended;
      recordMs((bucket.corrected ??= createLatencyHistogram()), corrected);
      recordMs((bucket.uncorrected ??= createLatencyHistogram()), now - request.dispatched);
      if (streamed) {
        this.totals.streams.complete++;
        recordCount(this.chunksPerStream, request.chunks);
        recordCount(this.bytesPerStream, request.bytes);
      }
      const slo = this.plan.slo;
      if (slo) {
        const firstAt = request.firstChunkAt === 0 ? now : request.firstChunkAt;
        const meets = (slo.latencyMs === undefined || corrected <= slo.latencyMs) && (slo.firstChunkMs === undefined || firstAt - request.intended <= slo.firstChunkMs);
        if (meets) this.totals.good++;
      }
    } else {
      const kind = outcome === 'stale' ? 'closed' : outcome;
      this.totals.errors[kind] = (this.totals.errors[kind] ?? 0) + 1;
      bucket.errors++;
      if (kind === 'truncated') this.totals.streams.truncated++;
      else if (kind === 'error-frame') this.totals.streams.errorFrame++;
    }
    if (channel) this.afterFinish(channel, now);
  }

  private afterFinish(channel: Channel, now: number): void {
    if (this.finished) return;
    if (channel.alive) this.feed(channel, now);
    this.checkDone();
  }

  /** Gives a connection with free slots its next work: retries first, then what the pacing wants. */
  private feed(channel: Channel, now: number): void {
    while (channel.alive && channel.free > 0 && this.retries.length > 0) channel.start(this.retries.shift()!);
    if (this.plan.pacing.kind === 'closed') this.fillClosed(channel, now);
    else {
      while (channel.alive && channel.free > 0 && this.backlogSize > 0) this.dispatch(channel, this.takeBacklog()!, now);
      this.list(channel);
    }
  }

  onClosed(channel: Channel, connectFailed: boolean): void {
    this.channels.delete(channel);
    this.open--;
    if (this.finished) return;
    const now = performance.now();
    if (this.plan.pacing.kind === 'closed') {
      if (now < this.endPerf || this.retries.length > 0) {
        if (connectFailed) setTimeout(() => !this.finished && this.feed(this.openChannel(), performance.now()), RECONNECT_PAUSE_MS);
        else this.feed(this.openChannel(), now);
      }
    } else {
      while ((this.backlogSize > 0 || this.retries.length > 0) && this.open < this.shareOfConnections) this.feed(this.openChannel(), now);
    }
    this.checkDone();
  }

  // ---- the end ----

  private inFlight(): number {
    let busy = 0;
    for (const channel of this.channels) if (channel.alive) busy += channel.free < this.slotsPerChannel() ? 1 : 0;
    return busy;
  }

  private slotsPerChannel(): number {
    return this.plan.target.transport === 'ws' ? this.plan.target.inFlightPerSocket : 1;
  }

  private checkDone(): void {
    if (this.finished || !this.scheduleDone) return;
    if (this.backlogSize > 0 || this.retries.length > 0 || this.inFlight() > 0) return;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const now = performance.now();
    for (const channel of [...this.channels]) channel.expire(Infinity, now);
    for (const request of this.retries.splice(0)) this.onFinish(undefined, request, 'closed', now);
    this.totals.unsent += this.backlogSize;
    if (this.backlogSize > 0) this.totals.errors.unsent = (this.totals.errors.unsent ?? 0) + this.backlogSize;
    this.backlog.length = 0;
    this.backlogHead = 0;
    this.resolveDone?.();
  }

  private sweep(): void {
    const now = performance.now();
    for (const channel of [...this.channels]) channel.expire(now - this.plan.timeoutMs, now);
    // Past the end, what is still unanswered or unsent after one more timeout is given up.
    if (this.scheduleDone && now > this.endPerf + this.plan.timeoutMs + SWEEP_MS) this.finish();
    else this.checkDone();
  }

  // ---- accounting ----

  private bucket(at: number): Bucket {
    const offset = at - this.startPerf;
    const second = offset > 0 ? Math.floor(offset / 1000) : 0;
    if (second === this.lastSecond) return this.lastBucket!;
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = { scheduled: 0, sent: 0, ok: 0, errors: 0, corrected: undefined, uncorrected: undefined };
      this.buckets.set(second, bucket);
    }
    this.lastSecond = second;
    this.lastBucket = bucket;
    return bucket;
  }

  private flushBuckets(all: boolean): void {
    const current = Math.floor((performance.now() - this.startPerf) / 1000);
    const out: BucketReport[] = [];
    for (const [second, bucket] of this.buckets) {
      if (!all && second >= current) continue;
      out.push({
        second,
        scheduled: bucket.scheduled,
        sent: bucket.sent,
        ok: bucket.ok,
        errors: bucket.errors,
        corrected: bucket.corrected?.data(),
        uncorrected: bucket.uncorrected?.data(),
      });
      this.buckets.delete(second);
      if (second === this.lastSecond) {
        this.lastSecond = -1;
        this.lastBucket = undefined;
      }
    }
    if (out.length > 0) this.onBuckets(out);
  }

  private report(): WorkerTotals {
    return {
      ...this.totals,
      schedulerLag: this.schedulerLag.data(),
      sendDelay: this.sendDelay.data(),
      firstChunk: this.firstChunk.data(),
      firstChunkUncorrected: this.firstChunkUncorrected.data(),
      chunkGap: this.chunkGap.data(),
      chunksPerStream: this.chunksPerStream.data(),
      bytesPerStream: this.bytesPerStream.data(),
    };
  }
}
