/**
 * Where a clustered gateway's replicas come from: this machine's device pools and every live node
 * agent's devices, placed by the one pure rule in autoscaler/placer.ts (device preference, then
 * region preference, then the pool with the most room). A local placement becomes a worker thread
 * here (LocalReplicaFactory), a remote one a RemoteReplicaLink that the node loads on `start`.
 *
 * A node's `maxReplicas` bounds all its devices together, so one pool's room depends on what the
 * node's other pools hold: replicas are placed one at a time, each over fresh candidates. A node's
 * room also counts replicas other gateways keep there (the keys in its heartbeat that are not
 * ours), so two gateways sharing nodes do not both count on the same slot. Nodes that are suspect,
 * draining or gone offer no room; their replicas come back through `released` and are re-placed by
 * the endpoint's reconcile.
 */
import type { EndpointConfig } from '../config/schema.js';
import { placeReplicas, type PlacementCandidate } from '../autoscaler/placer.js';
import type { ReplicaFactory } from '../endpoints/endpoint.js';
import { deviceCanHost, localDeviceLimit, localDevicesFor, LocalReplicaFactory, replicaSpecOf } from '../endpoints/local-replicas.js';
import type { DeviceInfo } from '../../native/devices.js';
import type { ReplicaLink, ReplicaPlacement } from '../../workers/protocol/link.js';
import type { ReplicaSpec } from '../../workers/pool/thread-link.js';
import type { NodeMember } from './membership.js';
import type { RemoteCluster } from './remote-link.js';

const LOCAL_NODE = 'local';

/** A link to a replica on a node; `key` names it in that node's heartbeats. */
export type KeyedLink = ReplicaLink & { readonly key: string };

/** What placement needs of the cluster (a RemoteCluster, through `clusterView`, or a fake in tests). */
export interface ClusterView {
  /** Nodes that may take new replicas now: alive, not draining, and reachable. */
  routableNodes(): NodeMember[];
  createLink(placement: ReplicaPlacement, spec: ReplicaSpec): KeyedLink;
}

export function clusterView(cluster: RemoteCluster): ClusterView {
  return {
    routableNodes: () => (cluster.connection.state === 'closed' ? [] : cluster.nodes().filter((n) => cluster.membership.isRoutable(n.name))),
    createLink: (placement, spec) => cluster.createLink(placement, spec),
  };
}

export interface ClusterReplicaFactoryOptions {
  cluster: ClusterView;
  /** The gateway's region: its own pools stand there, and endpoints without `regions` prefer it. */
  region: string;
  /** The gateway machine's own devices. */
  localDevices: readonly DeviceInfo[];
}

export class ClusterReplicaFactory implements ReplicaFactory {
  readonly region: string;
  private readonly cluster: ClusterView;
  private readonly local: LocalReplicaFactory;
  private readonly localDevices: readonly DeviceInfo[];
  /** Local replicas per device, created here and not yet released. */
  private readonly localUsed = new Map<string, number>();
  /** Remote links per node name, created here and not yet released. */
  private readonly remote = new Map<string, Set<KeyedLink>>();
  private seq = 0;

  constructor(options: ClusterReplicaFactoryOptions) {
    this.cluster = options.cluster;
    this.region = options.region;
    this.localDevices = options.localDevices;
    this.local = new LocalReplicaFactory(options.region, options.localDevices);
  }

  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[] {
    const regionPreference = config.regions.length > 0 ? config.regions : [this.region];
    const links: ReplicaLink[] = [];
    while (links.length < count) {
      const [choice] = placeReplicas({ count: 1, devicePreference: config.devices, regionPreference }, this.candidates(config));
      const link = choice && this.createOn(choice, endpoint, config);
      if (!link) break;
      links.push(link);
    }
    return links;
  }

  released(link: ReplicaLink): void {
    if (link.node !== LOCAL_NODE) {
      const links = this.remote.get(link.node);
      links?.delete(link as KeyedLink);
      if (links?.size === 0) this.remote.delete(link.node);
      return;
    }
    const n = this.localUsed.get(link.device) ?? 0;
    if (n > 0) this.localUsed.set(link.device, n - 1);
    this.local.released(link);
  }

  /** Replicas this gateway has on `node`, starting or running. */
  placedOn(node: string): number {
    return this.remote.get(node)?.size ?? 0;
  }

  /** Replica slots `member` has left: its bound, less ours and those other gateways report there. */
  private freeOn(member: NodeMember): number {
    const ours = new Set([...(this.remote.get(member.name) ?? [])].map((link) => link.key));
    let elsewhere = 0;
    for (const key of Object.keys(member.inFlight)) if (!ours.has(key)) elsewhere++;
    return Math.max(0, member.maxReplicas - ours.size - elsewhere);
  }

  /** Every pool with room that the endpoint may use, as placer candidates. */
  private candidates(config: EndpointConfig): PlacementCandidate[] {
    const wanted = (device: string) => config.devices.includes(device);
    const candidates: PlacementCandidate[] = [];
    if (config.placement !== 'remote') {
      for (const device of localDevicesFor(config, this.localDevices)) {
        candidates.push({ node: LOCAL_NODE, region: this.region, device, free: localDeviceLimit(device) - (this.localUsed.get(device) ?? 0) });
      }
    }
    if (config.placement !== 'local') {
      for (const member of this.cluster.routableNodes()) {
        const free = this.freeOn(member);
        if (free === 0) continue;
        for (const device of member.devices) {
          if (deviceCanHost(config, device) && wanted(device.id)) candidates.push({ node: member.name, region: member.region, device: device.id, free });
        }
      }
    }
    return candidates;
  }

  private createOn(choice: PlacementCandidate, endpoint: string, config: EndpointConfig): ReplicaLink | undefined {
    if (choice.node === LOCAL_NODE) {
      const [link] = this.local.create(endpoint, { ...config, devices: [choice.device] }, 1);
      if (link) this.localUsed.set(choice.device, (this.localUsed.get(choice.device) ?? 0) + 1);
      return link;
    }
    const spec = replicaSpecOf(endpoint, config);
    const link = this.cluster.createLink(
      { replicaId: `${endpoint}@${choice.node}/${choice.device}/${++this.seq}`, endpoint, device: choice.device, node: choice.node, region: choice.region },
      spec,
    );
    let links = this.remote.get(choice.node);
    if (!links) this.remote.set(choice.node, (links = new Set()));
    links.add(link);
    return link;
  }
}
