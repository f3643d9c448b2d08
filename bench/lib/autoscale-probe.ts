/**
 * Watches one endpoint of a running gateway through `GET /v1/endpoints` while load is on it, and
 * turns what it saw into the figures of a load step: when the first scale-up was decided, when
 * the first added replica was created, ready and had served a request, and how many replicas
 * there were over time.
 *
 * Times are epoch milliseconds (Date.now()) on both sides: the gateway runs on the same machine,
 * so its decision and start stamps share the clock with the step's start. A state seen by a poll
 * is stamped with the moment the answer arrived, so "ready" and "served" are upper bounds, late by
 * at most one poll interval plus the poll's round trip (kept with each sample). Polls go through
 * the same event loop as the traffic, so their round trip also shows how busy the gateway is.
 */

export interface ReplicaView {
  id: string;
  state: string;
  served: number;
  /** When the gateway created the replica (before its thread loaded the model). */
  startedAt: number;
}

export interface ProbeSample {
  /** When the answer arrived. */
  at: number;
  rttMs: number;
  inFlight: number;
  queued: number;
  desired: number;
  replicas: ReplicaView[];
}

export interface DecisionView {
  at: number;
  current: number;
  desired: number;
  reason: string;
  applied: boolean;
  avgConcurrency: number;
  panicConcurrency: number;
}

export interface ProbeRecord {
  endpoint: string;
  intervalMs: number;
  samples: ProbeSample[];
  /** Every decision seen in any poll, oldest first (the listing keeps only the latest ones). */
  decisions: DecisionView[];
  /** Polls that failed (timeout, refused, not JSON). */
  failedPolls: number;
}

export interface EndpointProbe {
  /** One poll now, outside the loop (for a reading before the step). */
  sample(): Promise<ProbeSample>;
  /** Stops polling and returns everything seen. */
  stop(): Promise<ProbeRecord>;
}

interface ListedReplica {
  id: string;
  state: string;
  served: number;
  started_at: string;
}

interface ListedDecision {
  at: number;
  current: number;
  desired: number;
  reason: string;
  applied: boolean;
  observed: { avgConcurrency: number; panicConcurrency: number };
}

interface ListedEndpoint {
  name: string;
  desired: number;
  in_flight: number;
  queued: number;
  replicas: ListedReplica[];
  autoscaling?: { decisions: ListedDecision[] };
}

const POLL_TIMEOUT_MS = 2000;

/** Starts polling `<baseUrl>/v1/endpoints` every `intervalMs` (measured from one poll's start to the next). */
export function startEndpointProbe(baseUrl: string, endpoint: string, intervalMs: number): EndpointProbe {
  const samples: ProbeSample[] = [];
  const decisions = new Map<string, DecisionView>();
  let failedPolls = 0;
  let stopped = false;

  const poll = async (): Promise<ProbeSample> => {
    const sentAt = Date.now();
    const res = await fetch(`${baseUrl}/v1/endpoints`, { signal: AbortSignal.timeout(POLL_TIMEOUT_MS) });
    const listing = (await res.json()) as { endpoints: ListedEndpoint[] };
    const at = Date.now();
    const found = listing.endpoints.find((e) => e.name === endpoint);
    if (!found) throw new Error(`GET /v1/endpoints lists no endpoint named "${endpoint}"`);
    for (const d of found.autoscaling?.decisions ?? []) {
      const view: DecisionView = {
        at: d.at,
        current: d.current,
        desired: d.desired,
        reason: d.reason,
        applied: d.applied,
        avgConcurrency: round(d.observed.avgConcurrency, 2),
        panicConcurrency: round(d.observed.panicConcurrency, 2),
      };
      decisions.set(`${d.at}/${d.current}/${d.desired}/${d.reason}`, view);
    }
    return {
      at,
      rttMs: at - sentAt,
      inFlight: found.in_flight,
      queued: found.queued,
      desired: found.desired,
      replicas: found.replicas.map((r) => ({ id: r.id, state: r.state, served: r.served, startedAt: Date.parse(r.started_at) })),
    };
  };

  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        samples.push(await poll());
      } catch {
        failedPolls++;
      }
      const wait = intervalMs - (Date.now() - started);
      if (wait > 0 && !stopped) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();

  return {
    sample: poll,
    async stop() {
      stopped = true;
      await loop;
      return { endpoint, intervalMs, samples, decisions: [...decisions.values()].sort((a, b) => a.at - b.at), failedPolls };
    },
  };
}

/* ------------------------------------------------------------- what a step shows */

export interface StepMilestones {
  /** Milliseconds from the step's start; null when it did not happen during the observation. */
  firstScaleUpDecisionMs: number | null;
  firstScaleUpReason: string | null;
  firstScaleUpTo: number | null;
  firstAddedReplicaCreatedMs: number | null;
  firstAddedReplicaReadyMs: number | null;
  firstAddedReplicaServedMs: number | null;
  peakReady: number;
  /** When the ready count first reached its peak. */
  peakReadyMs: number | null;
}

/**
 * The milestones of a step that started at `stepStartAt`, for replicas that did not exist in the
 * reading taken before it (`before`).
 */
export function stepMilestones(record: ProbeRecord, before: ProbeSample, stepStartAt: number, stepEndAt: number): StepMilestones {
  const existing = new Set(before.replicas.map((r) => r.id));
  const since = (at: number | undefined): number | null => (at === undefined ? null : at - stepStartAt);
  const during = record.samples.filter((s) => s.at >= stepStartAt && s.at <= stepEndAt);
  const added = (s: ProbeSample): ReplicaView[] => s.replicas.filter((r) => !existing.has(r.id));

  const scaleUp = record.decisions.find((d) => d.applied && d.desired > d.current && d.at >= stepStartAt && d.at <= stepEndAt);
  const created = during.flatMap(added).map((r) => r.startedAt);
  const ready = during.find((s) => added(s).some((r) => r.state === 'ready' || r.served > 0));
  const served = during.find((s) => added(s).some((r) => r.served > 0));
  const readyCounts = during.map((s) => readyCount(s));
  const peakReady = Math.max(readyCount(before), ...readyCounts);
  const peakAt = during.find((s) => readyCount(s) === peakReady)?.at;
  return {
    firstScaleUpDecisionMs: since(scaleUp?.at),
    firstScaleUpReason: scaleUp?.reason ?? null,
    firstScaleUpTo: scaleUp?.desired ?? null,
    firstAddedReplicaCreatedMs: created.length > 0 ? Math.min(...created) - stepStartAt : null,
    firstAddedReplicaReadyMs: since(ready?.at),
    firstAddedReplicaServedMs: since(served?.at),
    peakReady,
    peakReadyMs: since(peakAt),
  };
}

export function readyCount(sample: ProbeSample): number {
  return sample.replicas.filter((r) => r.state === 'ready').length;
}

export interface ReplicaCountChange {
  /** Milliseconds from the step's start. */
  t: number;
  ready: number;
  starting: number;
  draining: number;
}

/** The replica counts each time they changed: a compact series of the whole observation. */
export function replicaCountChanges(record: ProbeRecord, stepStartAt: number): ReplicaCountChange[] {
  const changes: ReplicaCountChange[] = [];
  for (const s of record.samples) {
    const count = (state: string): number => s.replicas.filter((r) => r.state === state).length;
    const next = { t: s.at - stepStartAt, ready: count('ready'), starting: count('starting'), draining: count('draining') };
    const last = changes[changes.length - 1];
    if (last && last.ready === next.ready && last.starting === next.starting && last.draining === next.draining) continue;
    changes.push(next);
  }
  return changes;
}

/** Ready replicas at the end of each whole second from the step's start (the last reading by then). */
export function readyBySecond(record: ProbeRecord, before: ProbeSample, stepStartAt: number, seconds: number): number[] {
  const counts: number[] = [];
  let current = readyCount(before);
  let i = 0;
  for (let second = 1; second <= seconds; second++) {
    const until = stepStartAt + second * 1000;
    for (let sample = record.samples[i]; sample !== undefined && sample.at <= until; sample = record.samples[++i]) {
      if (sample.at >= stepStartAt) current = readyCount(sample);
    }
    counts.push(current);
  }
  return counts;
}

/** Requests each replica had served by its last reading (replicas drained and gone keep their last count). */
export function servedByReplica(record: ProbeRecord): Record<string, number> {
  const served: Record<string, number> = {};
  for (const s of record.samples) for (const r of s.replicas) served[r.id] = Math.max(served[r.id] ?? 0, r.served);
  return served;
}

/**
 * Milliseconds from the end of the load until the endpoint was back to `count` replicas, all
 * ready and none draining; null when it was not by the last reading.
 */
export function backToCountMs(record: ProbeRecord, stepEndAt: number, count: number): number | null {
  const back = record.samples.find((s) => s.at >= stepEndAt && s.replicas.length === count && readyCount(s) === count);
  return back ? back.at - stepEndAt : null;
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
