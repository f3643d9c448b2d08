/**
 * Where new replicas go: a pure function over the device pools that have room. Locally the
 * candidates are the gateway's own pools (node "local"); in a cluster the remote nodes' pools
 * join the same list, so one rule places replicas everywhere.
 *
 * Device preference comes first (an endpoint lists its devices in order; the first kind with
 * room fills before the next is touched), then region preference, then the pool with the most
 * room left, which spreads replicas over equal devices instead of stacking them on one.
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';

export interface PlacementCandidate {
  readonly node: string;
  readonly region: string;
  /** "cpu", "cuda:N" or "coreml". */
  readonly device: string;
  /** Replica slots left on this device of this node. */
  readonly free: number;
}

export interface PlacementRequest {
  readonly count: number;
  /** Devices in order of preference, as an endpoint's `devices:` names them (cpu, cuda:N, coreml). */
  readonly devicePreference: readonly string[];
  /** Regions in order of preference; others come after, in no particular order among themselves. */
  readonly regionPreference?: readonly string[];
}

/**
 * One entry per replica placed, in placement order; each entry is the candidate object it went
 * to (so several replicas on one pool repeat it). Fewer than `count` when room runs out.
 */
export function placeReplicas(request: PlacementRequest, candidates: readonly PlacementCandidate[]): PlacementCandidate[] {
  if (!Number.isInteger(request.count) || request.count < 0) {
    throw new SwitchyardError('SY_INTERNAL', `placeReplicas: count must be a non-negative integer, got ${request.count}`);
  }
  const regions = request.regionPreference ?? [];
  const regionRank = (region: string): number => {
    const i = regions.indexOf(region);
    return i === -1 ? regions.length : i;
  };
  const slots = candidates.map((candidate) => ({ candidate, room: Math.max(0, Math.floor(candidate.free)) }));
  const placed: PlacementCandidate[] = [];

  for (const preference of request.devicePreference) {
    const matching = slots.filter((slot) => slot.candidate.device === preference);
    while (placed.length < request.count) {
      let best: (typeof slots)[number] | undefined;
      for (const slot of matching) {
        if (slot.room === 0) continue;
        if (best === undefined) {
          best = slot;
          continue;
        }
        const byRegion = regionRank(slot.candidate.region) - regionRank(best.candidate.region);
        if (byRegion < 0 || (byRegion === 0 && slot.room > best.room)) best = slot;
      }
      if (best === undefined) break;
      best.room -= 1;
      placed.push(best.candidate);
    }
  }
  return placed;
}
