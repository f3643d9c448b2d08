/**
 * Where a federation's leader puts an endpoint's new replicas: a pure function over the nodes it
 * knows, through the same placement rule a single gateway uses (autoscaler/placer.ts: device
 * preference, then region, then the node with the most room). Replicas are chosen one at a time
 * over fresh candidates, since a node's `maxReplicas` bounds all its devices together; a node's
 * room counts the replicas its heartbeats list and those any endpoint's record puts there (a
 * placement under way is in the record before the node has it).
 */
import { placeReplicas, type PlacementCandidate } from '../autoscaler/placer.js';
import type { NodeMember } from '../cluster/membership.js';
import type { EndpointConfig } from '../config/schema.js';
import type { SharedReplica } from './replica-set.js';

export interface SharedPlacementInput {
  endpoint: string;
  /** The endpoint version the new replicas load. */
  version: string;
  config: Pick<EndpointConfig, 'devices' | 'regions' | 'model'>;
  count: number;
  /** Nodes that may take new replicas (alive, not draining). */
  nodes: readonly NodeMember[];
  /** Replica keys on `node` over every endpoint's record. */
  occupied(node: string): ReadonlySet<string>;
  /** A fresh, unique replica key. */
  newKey(): string;
  /** Wall-clock ms, recorded as the replicas' `since`. */
  now: number;
}

/** New `starting` entries for the record; fewer than `count` when room runs out. */
export function chooseSharedReplicas(input: SharedPlacementInput): SharedReplica[] {
  const { config } = input;
  const chosen: SharedReplica[] = [];
  const extra = new Map<string, number>();
  for (let i = 0; i < input.count; i++) {
    const candidates: PlacementCandidate[] = [];
    for (const member of input.nodes) {
      const held = new Set([...Object.keys(member.inFlight), ...input.occupied(member.name)]);
      const free = member.maxReplicas - held.size - (extra.get(member.name) ?? 0);
      if (free <= 0) continue;
      for (const device of member.devices) {
        if (config.model !== undefined && device.onnx === false) continue;
        if (config.devices.includes(device.id)) candidates.push({ node: member.name, region: member.region, device: device.id, free });
      }
    }
    const [pick] = placeReplicas({ count: 1, devicePreference: config.devices, regionPreference: config.regions }, candidates);
    const member = pick && input.nodes.find((n) => n.name === pick.node);
    if (!pick || !member) break;
    extra.set(pick.node, (extra.get(pick.node) ?? 0) + 1);
    const key = input.newKey();
    chosen.push({
      key,
      replicaId: `${input.endpoint}@${pick.node}/${pick.device}/${key.slice(-6)}`,
      node: pick.node,
      incarnation: member.incarnation,
      device: pick.device,
      region: pick.region,
      version: input.version,
      state: 'starting',
      since: input.now,
    });
  }
  return chosen;
}
