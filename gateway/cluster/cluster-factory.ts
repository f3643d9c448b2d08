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
import { deviceMatches, placeReplicas, type PlacementCandidate } from '../autoscaler/placer.js';
import type { ReplicaFactory } from '../endpoints/endpoint.js';
import { defaultOutputDir, localDeviceLimit, LocalReplicaFactory } from '../endpoints/local-replicas.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { ReplicaSpec } from '../../workers/pool/thread-link.js';
import { RemoteReplicaLink, type RemoteCluster } from './remote-link.js';

const LOCAL_NODE = 'local';

export interface ClusterReplicaFactoryOptions {
  cluster: RemoteCluster;
  /** The gateway's region: its own pools stand there, and endpoints without `regions` prefer it. */
  region: string;
}

/** One node's share as this gateway sees it. */
export interface NodeShare {
  /** Replicas of this gateway on the node, starting or running. */
  ours: number;
  /** Replica slots the node has left for anyone. */
  free: number;
}

export class ClusterReplicaFactory implements ReplicaFactory {
  readonly region: string;
  private readonly cluster: RemoteCluster;
  private readonly local: LocalReplicaFactory;
  /** Local replicas per device, created here and not yet released. */
  private readonly localUsed = new Map<string, number>();
  /** Remote links per node name, created here and not yet released. */
  private readonly remote = new Map<string, Set<RemoteReplicaLink>>();
  private seq = 0;

  constructor(options: ClusterReplicaFactoryOptions) {
    this.cluster = options.cluster;
    this.region = options.region;
    this.local = new LocalReplicaFactory(options.region);
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
    if (link instanceof RemoteReplicaLink) {
      const links = this.remote.get(link.node);
      links?.delete(link);
      if (links?.size === 0) this.remote.delete(link.node);
      return;
    }
    const n = this.localUsed.get(link.device) ?? 0;
    if (n > 0) this.localUsed.set(link.device, n - 1);
    this.local.released(link);
  }

  /** How full a node is from here; undefined for a node not (or no longer) routable. */
  share(node: string): NodeShare | undefined {
    const member = this.cluster.node(node);
    if (!member || !this.cluster.membership.isRoutable(node) || this.cluster.connection.state === 'closed') return undefined;
    const ours = new Set([...(this.remote.get(node) ?? [])].map((link) => link.key));
    let elsewhere = 0;
    for (const key of Object.keys(member.inFlight)) if (!ours.has(key)) elsewhere++;
    return { ours: ours.size, free: Math.max(0, member.maxReplicas - ours.size - elsewhere) };
  }

  /** Every pool with room that the endpoint may use, as placer candidates. */
  private candidates(config: EndpointConfig): PlacementCandidate[] {
    const wanted = (device: string) => config.devices.some((preference) => deviceMatches(preference, device));
    const candidates: PlacementCandidate[] = [];
    if (config.placement !== 'remote') {
      for (const device of config.devices) {
        candidates.push({ node: LOCAL_NODE, region: this.region, device, free: localDeviceLimit(device) - (this.localUsed.get(device) ?? 0) });
      }
    }
    if (config.placement !== 'local') {
      for (const member of this.cluster.nodes()) {
        const share = this.share(member.name);
        if (!share || share.free === 0) continue;
        for (const device of member.devices) {
          if (wanted(device.id)) candidates.push({ node: member.name, region: member.region, device: device.id, free: share.free });
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
    const spec: ReplicaSpec = {
      predictorPath: config.predictor,
      modelPath: config.model,
      outputDir: config.output_dir ?? defaultOutputDir(endpoint),
      settings: config.settings,
      produces: config.produces,
      keepFiles: config.keep_files,
    };
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
