/**
 * Replica choice, a pure function over plain data: power of two choices on outstanding requests
 * weighted by each replica's measured latency, so a slow CPU replica gets less traffic than a
 * fast GPU one. Replicas in the preferred region win while any of them has room; otherwise the
 * request spills to other regions. No allocation on the hot path.
 */
export interface RoutableReplica {
  /** Accepting new requests (ready, not draining). */
  readonly routable: boolean;
  readonly inFlight: number;
  /** Requests it may hold at once. */
  readonly capacity: number;
  /** Smoothed service time in ms (EWMA), > 0. */
  readonly latencyMs: number;
  readonly region: string;
}

function hasRoom(r: RoutableReplica): boolean {
  return r.routable && r.inFlight < r.capacity;
}

/** Expected wait if this replica takes one more request. */
export function replicaScore(r: RoutableReplica): number {
  return (r.inFlight + 1) * r.latencyMs;
}

function pickAmong<R extends RoutableReplica>(replicas: readonly R[], region: string | undefined, random: () => number): R | undefined {
  let count = 0;
  for (const r of replicas) if (hasRoom(r) && (region === undefined || r.region === region)) count++;
  if (count === 0) return undefined;
  if (count === 1) {
    for (const r of replicas) if (hasRoom(r) && (region === undefined || r.region === region)) return r;
  }
  const a = Math.floor(random() * count);
  let b = Math.floor(random() * (count - 1));
  if (b >= a) b++;
  let first: R | undefined;
  let second: R | undefined;
  let i = 0;
  for (const r of replicas) {
    if (!hasRoom(r) || (region !== undefined && r.region !== region)) continue;
    if (i === a) first = r;
    if (i === b) second = r;
    i++;
  }
  return replicaScore(first!) <= replicaScore(second!) ? first : second;
}

/**
 * Picks a replica with room, preferring `regions` in order (the client's, then the gateway's),
 * then any region. Returns undefined when every replica is full or not routable.
 */
export function pickReplica<R extends RoutableReplica>(
  replicas: readonly R[],
  regions: readonly string[] = [],
  random: () => number = Math.random,
): R | undefined {
  if (replicas.length === 1) return hasRoom(replicas[0]!) ? replicas[0] : undefined;
  for (const region of regions) {
    const r = pickAmong(replicas, region, random);
    if (r) return r;
  }
  return pickAmong(replicas, undefined, random);
}
