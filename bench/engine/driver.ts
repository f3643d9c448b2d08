/**
 * The load driver of one worker thread: it keeps the schedule (open loop) or its connections busy
 * (closed loop), hands requests to connections, and accounts for every request it was meant to
 * send.
 *
 * Open loop: a request is due at its intended time whatever the server does. It goes to a free
 * connection; if none is, to the first one that the answers read in that turn of the event loop
 * free, or to a new one when the connections already answering would not take it soon
 * (openForBacklog), while fewer than the thread's share of `--max-connections` are open. Past that
 * it waits for the next free connection, and the wait is reported (`waitedForConnection`) as well
 * as counted in its corrected latency, which runs from the intended send time. Connections for the
 * schedule's first milliseconds are opened before the clock starts (`warm`). The uncorrected
 * latency runs from the moment the request went to a connection (a new connection's handshake
 * included). Nothing due is dropped: a request still waiting when the run's drain deadline passes
 * is reported as `unsent`.
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
/**
 * Open loop: connections opened before the clock starts, for this many seconds of the schedule's
 * peak rate (one per 500 req/s), so that the first due requests find connections ready. Node's
 * timers send what is due about once a millisecond, and a connection carries one HTTP request at a
 * time. Without them a fast schedule starts against a cold process opening a connection per due
 * request, falls behind, and opens more: at 20,000 req/s against a server that answers 70,000 it
 * opened all 1,000 allowed within 140 ms, and the schedule was not kept.
 */
const WARM_CONNECTION_S = 0.002;
/** Warm connections that have not connected by then are left to connect while the run goes. */
const WARM_TIMEOUT_MS = 2_000;
/**
 * Open loop: connections being opened at once, at most, per thread. A due request that finds no
 * free connection waits for the first one free, or opened, rather than each opening its own: when
 * the generator itself falls behind (its code still cold at the start, a stall of the machine), the
 * requests due all at once would otherwise open hundreds of connections, the opening would put it
 * further behind, and more would open. Against a server that stops answering, connections still
 * grow by this many per connect.
 */
const MAX_CONNECTING = 16;
/**
 * Open loop: a generator this late on its own schedule (the lag of a tick's first due request), or
 * this busy over the last SWEEP_MS (its event loop's utilization), is the bottleneck itself, not
 * the server: more connections would only slow it further, so it opens one at a time. A server
 * that stalls leaves the generator idle and on time, and connections open as fast as
 * MAX_CONNECTING allows.
 */
const BEHIND_MS = 5;
const BUSY_SHARE = 0.9;
/**
 * Open loop: requests waiting for a connection that the connections already answering would take
 * within this long open no new one. The time a connection takes per request is taken as the
 * shortest uncorrected latency of the last two sweep periods: a generator that reads its answers
 * late (because it is behind) makes latencies longer, never shorter. A connection counts as
 * answering while its request is younger than ANSWERING_MS or four times that latency; a server
 * that stalls makes them all older, and connections open for what waits.
 */
const DRAIN_MS = 10;
const ANSWERING_MS = 5;
/** A closed-loop connection that could not connect waits this long before the next try. */
const RECONNECT_PAUSE_MS = 50;

export class LoadDriver implements ChannelEvents {
  private startPerf = 0;
  private endPerf = 0;
  private readonly durationMs: number;
  private readonly shareOfConnections: number;
  private readonly channels = new Set<Channel>();
  private readonly ready: Channel[] = [];
  private readonly backlog: number[] = [];
  private backlogHead = 0;
  /** Requests ever put in the backlog; those up to waitedThrough are counted as waited. */
  private backlogPushed = 0;
  private waitedThrough = 0;
  private openScheduled = false;
  /** How late the first request due at the last tick was noticed (open loop). */
  private lagMs = 0;
  /** The shortest uncorrected latency of an answer in this sweep period and the one before, ms. */
  private shortestNow = Infinity;
  private shortestBefore = Infinity;
  /** The last count of answering connections, and when it was made. */
  private answeringCount = 0;
  private answeringAt = -Infinity;
  /** This thread's event loop utilization over the last sweep period, and where that period began. */
  private busyShare = 0;
  private loopMark = performance.eventLoopUtilization();
  private open = 0;
  /** Connections opened that cannot carry requests yet (Channel.opened has not settled). */
  private connecting = 0;
  private scheduleDone = false;
  private finished = false;
  private readonly buckets = new Map<number, Bucket>();
  /** The bucket used last and its second: most events of a turn fall in the same second. */
  private lastSecond = -1;
  private lastBucket: Bucket | undefined;
  /** Answers are streams (chunks and stream integrity are counted). */
  private readonly streamed: boolean;
  /**
   * Closed loop: a request is sent the moment it is due, so its corrected and uncorrected
   * latencies are one number, recorded once (in `corrected`) and reported as both.
   */
  private readonly closedLoop: boolean;
  /** Requests sent at the very instant they were due (every closed-loop request): their send delay of 0 is recorded as one count at the end. */
  private sentOnTime = 0;
  /**
   * The record of the last request finished, which the next request sent takes over (nothing else
   * holds it once it is finished, and a channel lets go of it before it reports the finish): one
   * allocation less per request, and a record that is still in the cache.
   */
  private spare: RequestRecord | undefined;
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
    private readonly plan: Omit<LoadPlan, 'startAt'>,
    private readonly workerIndex: number,
    private readonly workers: number,
    private readonly onBuckets: (buckets: BucketReport[]) => void,
  ) {
    this.durationMs = planDurationS(plan.pacing) * 1000;
    const pacing = plan.pacing;
    const total = pacing.kind === 'open' ? pacing.maxConnections : pacing.connections;
    // Spread connections over the threads; every thread gets at least one.
    this.shareOfConnections = Math.max(1, Math.floor(total / workers) + (workerIndex < total % workers ? 1 : 0));
    const target = plan.target;
    this.streamed = target.transport === 'ws' ? target.stream : target.stream !== 'none';
    this.closedLoop = pacing.kind === 'closed';
  }

  /**
   * Open loop: opens the connections the start of the schedule needs (WARM_CONNECTION_S) and
   * resolves once they can carry requests, or have failed, or after WARM_TIMEOUT_MS. Call before
   * the start instant is set.
   */
  async warm(): Promise<void> {
    const pacing = this.plan.pacing;
    if (pacing.kind !== 'open') return;
    const peak = Math.max(0, ...pacing.segments.map((s) => Math.max(s.fromRate, s.toRate))) / this.workers;
    const count = Math.min(this.shareOfConnections, Math.max(1, Math.ceil(peak * WARM_CONNECTION_S)));
    const opened: Array<Promise<void>> = [];
    for (let i = 0; i < count; i++) {
      const channel = this.openChannel();
      this.list(channel);
      opened.push(channel.opened);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(opened), new Promise((resolve) => (timer = setTimeout(resolve, WARM_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  /** Runs the plan from `startAt` (ms since the epoch, the same instant for every thread). */
  async run(startAt: number): Promise<WorkerTotals> {
    this.startPerf = startAt - performance.timeOrigin;
    this.endPerf = this.startPerf + this.durationMs;
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
      if (next !== undefined && this.startPerf + next <= now) this.lagMs = now - (this.startPerf + next);
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
      this.backlog.push(intended);
      this.backlogPushed++;
      if (this.open >= this.shareOfConnections) {
        // Every allowed connection is open: it waits for the next one free.
        this.totals.waitedForConnection++;
        this.waitedThrough = this.backlogPushed;
      } else if (!this.openScheduled) {
        this.openScheduled = true;
        setImmediate(this.openAfterTurn);
      }
    }
  }

  /**
   * After the turn in which requests found no free connection: the answers read in it have freed
   * theirs (and taken requests from the backlog); what is still waiting opens new connections as
   * far as the limits allow. Requests still left once every allowed connection is open have waited
   * for a connection (`waitedForConnection`); a wait for connections being opened is in their send
   * delay and corrected latency, as any lateness is.
   */
  private readonly openAfterTurn = (): void => {
    this.openScheduled = false;
    this.openForBacklog(performance.now());
    if (this.open < this.shareOfConnections) return;
    // Backlog entries are numbered by push: those still in it are the last backlogSize pushed.
    const from = Math.max(this.backlogPushed - this.backlogSize, this.waitedThrough);
    if (this.backlogPushed > from) this.totals.waitedForConnection += this.backlogPushed - from;
    this.waitedThrough = this.backlogPushed;
  };

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
    this.connecting++;
    void channel.opened.then(() => {
      this.connecting--;
      this.openForBacklog(performance.now());
    });
    this.totals.connectionsOpened++;
    if (this.open > this.totals.peakConnections) this.totals.peakConnections = this.open;
    return channel;
  }

  private dispatch(channel: Channel, intended: number, now: number): void {
    const request = this.newRecord(intended, now);
    this.totals.sent++;
    if (now < this.endPerf) this.totals.sentInWindow++;
    this.bucket(now).sent++;
    if (now === intended) this.sentOnTime++;
    else recordMs(this.sendDelay, now - intended);
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

  /** A request's record: the last one finished, reset, or a new one. */
  private newRecord(intended: number, dispatched: number): RequestRecord {
    const spare = this.spare;
    if (spare === undefined) return { intended, dispatched, firstChunkAt: 0, lastChunkAt: 0, chunks: 0, bytes: 0, errorFrame: false, ended: false, retried: false, id: '' };
    this.spare = undefined;
    spare.intended = intended;
    spare.dispatched = dispatched;
    spare.firstChunkAt = 0;
    spare.lastChunkAt = 0;
    spare.chunks = 0;
    spare.bytes = 0;
    spare.errorFrame = false;
    spare.ended = false;
    spare.retried = false;
    spare.id = '';
    return spare;
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
      const uncorrected = now - request.dispatched;
      if (uncorrected < this.shortestNow) this.shortestNow = uncorrected;
      recordMs((bucket.corrected ??= createLatencyHistogram()), corrected);
      if (!this.closedLoop) recordMs((bucket.uncorrected ??= createLatencyHistogram()), uncorrected);
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
    this.spare = request;
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
      this.openForBacklog(now);
    }
    this.checkDone();
  }

  /**
   * Open loop: requests waiting for a connection open new ones, as far as the limits allow, for what
   * the connections already answering would not take within DRAIN_MS.
   */
  private openForBacklog(now: number): void {
    if (this.finished || this.plan.pacing.kind !== 'open') return;
    let waiting = this.backlogSize + this.retries.length;
    if (waiting === 0) return;
    const perRequestMs = Math.min(this.shortestNow, this.shortestBefore);
    if (perRequestMs < Infinity) waiting -= this.answering(now, perRequestMs) * this.slotsPerChannel() * (DRAIN_MS / Math.max(perRequestMs, 0.001));
    const connectingAtMost = this.lagMs > BEHIND_MS || this.busyShare > BUSY_SHARE ? 1 : MAX_CONNECTING;
    while (waiting > 0 && (this.backlogSize > 0 || this.retries.length > 0) && this.open < this.shareOfConnections && this.connecting < connectingAtMost) {
      this.feed(this.openChannel(), now);
      waiting -= this.slotsPerChannel();
    }
  }

  /**
   * Connections whose oldest request went out recently enough to be answered soon. Counted at most
   * once per millisecond: with many connections closing under a busy schedule (a server that
   * closes each one), a count per event would cost a pass over every connection per request.
   */
  private answering(now: number, perRequestMs: number): number {
    if (now - this.answeringAt < 1) return this.answeringCount;
    const since = now - Math.max(4 * perRequestMs, ANSWERING_MS);
    let count = 0;
    for (const channel of this.channels) if (channel.alive && channel.oldestSent >= since) count++;
    this.answeringAt = now;
    this.answeringCount = count;
    return count;
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
    const loop = performance.eventLoopUtilization();
    this.busyShare = performance.eventLoopUtilization(loop, this.loopMark).utilization;
    this.loopMark = loop;
    this.shortestBefore = this.shortestNow;
    this.shortestNow = Infinity;
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
      const corrected = bucket.corrected?.data();
      out.push({
        second,
        scheduled: bucket.scheduled,
        sent: bucket.sent,
        ok: bucket.ok,
        errors: bucket.errors,
        corrected,
        uncorrected: this.closedLoop ? corrected : bucket.uncorrected?.data(),
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
    // A send delay of 0 is recorded as 1 µs, the histograms' floor, as recordMs records it.
    if (this.sentOnTime > 0) recordMs(this.sendDelay, 0, this.sentOnTime);
    this.sentOnTime = 0;
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
