/**
 * An endpoint's shared replica set, as stored in the replicas KV bucket under `ep.<name>`, and the
 * pure rule the leader applies to it. One record per endpoint holds both the lease (who leads,
 * with which fencing token) and the replicas, so every placement decision is a compare-and-set
 * of the same key the lease lives in: a former leader whose lease was taken over fails its next
 * write and never acts on the state it last saw.
 *
 * A replica is `starting` (written before the node is asked, so a crash in between is visible to
 * the next leader), `ready` (every gateway routes to it) or `draining` (no gateway sends it new
 * work; the leader stops it once its in-flight requests finished).
 */

export type SharedReplicaState = 'starting' | 'ready' | 'draining';

export interface SharedReplica {
  key: string;
  replicaId: string;
  node: string;
  incarnation: string;
  device: string;
  region: string;
  /** The endpoint version it loads; another version than the record's is being rolled out. */
  version: string;
  state: SharedReplicaState;
  /** Wall-clock ms of the last state change (as the leader saw it). */
  since: number;
}

export interface ReplicaSetRecord {
  endpoint: string;
  /** The leading gateway's id and region. */
  leader: string;
  leaderRegion: string;
  /** The KV revision at which the leader took the lease: its fencing token. */
  token: number;
  /** The count the leader keeps the current version at (fixed, or the autoscaler's). */
  desired: number;
  /** The endpoint version replicas should load now. */
  version: string;
  replicas: SharedReplica[];
  /** Wall-clock ms of the leader's last write (informative: expiry is judged by revisions). */
  renewedAt: number;
}

export interface ReplicaSetPlan {
  /** Current-version replicas to add. */
  start: number;
  /** Keys to mark draining. */
  drain: string[];
  /** Keys gone from their node (node dead, restarted, replica lost): drop from the record. */
  forget: string[];
}

/**
 * What the leader should do now. `present(r)` says whether a replica still exists where the record
 * says (its node alive in the same incarnation and, once ready a while, listing it in heartbeats).
 *
 * Rolling update: replicas of an older version keep serving until as many current-version
 * replicas are ready as desired; then all of them drain at once. Older replicas still starting
 * are pointless and drain at once.
 */
export function planReplicaSet(record: Pick<ReplicaSetRecord, 'replicas' | 'desired' | 'version'>, present: (r: SharedReplica) => boolean): ReplicaSetPlan {
  const forget = record.replicas.filter((r) => !present(r)).map((r) => r.key);
  const gone = new Set(forget);
  const live = record.replicas.filter((r) => !gone.has(r.key) && r.state !== 'draining');
  const current = live.filter((r) => r.version === record.version);
  const old = live.filter((r) => r.version !== record.version);
  const drain: string[] = [];
  let start = 0;
  if (current.length < record.desired) start = record.desired - current.length;
  if (current.length > record.desired) {
    const excess = [...current].sort((a, b) => (a.state === b.state ? b.since - a.since : a.state === 'starting' ? -1 : 1));
    for (const r of excess.slice(0, current.length - record.desired)) drain.push(r.key);
  }
  const currentReady = current.filter((r) => r.state === 'ready').length;
  for (const r of old) {
    if (r.state === 'starting' || currentReady >= record.desired) drain.push(r.key);
  }
  return { start, drain, forget };
}

/**
 * Lease expiry judged on this gateway's own clock: the lease is held while the record's revision
 * keeps changing (the leader writes at least every lease/3), and expired once it stood still for
 * the lease. No clocks are compared across machines.
 */
export class LeaseWatch {
  private revision = -1;
  private changedAt = 0;

  constructor(readonly leaseMs: number) {}

  observe(revision: number, now: number): void {
    if (revision !== this.revision) {
      this.revision = revision;
      this.changedAt = now;
    }
  }

  /** The revision last seen (-1: none yet). */
  get seen(): number {
    return this.revision;
  }

  expired(now: number): boolean {
    return this.revision >= 0 && now - this.changedAt > this.leaseMs;
  }
}
