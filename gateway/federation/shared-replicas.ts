/**
 * How a federated gateway routes to the shared replica set: for every `ready` replica in an
 * endpoint's record it holds an attached link (a RemoteReplicaLink that sends requests to the
 * replica without having placed it, and detaches instead of stopping it). The gateway's Endpoint
 * is told the count to hold and this factory hands out attachments, so routing, retries and
 * draining are the same code as for a single gateway.
 *
 * In a federation a gateway runs no replicas of its own: a worker thread in one gateway could
 * serve only that gateway's clients and would die with it, so it cannot be part of a set that
 * every gateway routes to. A machine whose devices should serve runs a node agent next to its
 * gateway.
 */
import type { EndpointConfig } from '../config/schema.js';
import type { Endpoint, ReplicaFactory } from '../endpoints/endpoint.js';
import { replicaSpecOf } from '../endpoints/local-replicas.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { RemoteCluster, RemoteReplicaLink } from '../cluster/remote-link.js';
import type { SharedReplica } from './replica-set.js';

export class SharedReplicaFactory implements ReplicaFactory {
  /** Per endpoint: replicas that may be attached (ready in the record, node routable). */
  private readonly attachable = new Map<string, SharedReplica[]>();
  /** Keys attached now. */
  private readonly attached = new Set<string>();
  /** Keys whose link was lost: not attached again while the record still lists them. */
  private readonly lost = new Set<string>();

  constructor(private readonly cluster: RemoteCluster) {}

  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[] {
    const links: ReplicaLink[] = [];
    for (const r of this.attachable.get(endpoint) ?? []) {
      if (links.length >= count) break;
      if (this.attached.has(r.key) || this.lost.has(r.key)) continue;
      if (!this.cluster.membership.isRoutable(r.node, r.incarnation)) continue;
      this.attached.add(r.key);
      links.push(
        this.cluster.attachLink({ replicaId: r.replicaId, endpoint, device: r.device, node: r.node, region: r.region }, replicaSpecOf(endpoint, config), {
          key: r.key,
          incarnation: r.incarnation,
        }),
      );
    }
    return links;
  }

  released(link: ReplicaLink): void {
    const key = (link as RemoteReplicaLink).key;
    this.attached.delete(key);
    // Gone while the record still calls it ready: lost (node or replica died). Leave it alone
    // until the leader drops it from the record, instead of attaching to it again.
    if ((this.attachable.get(link.endpoint) ?? []).some((r) => r.key === key)) this.lost.add(key);
  }

  /** The endpoint left the deployment. */
  forget(endpoint: string): void {
    this.attachable.delete(endpoint);
  }

  /**
   * Makes `endpoint` route to exactly the ready replicas of its record: those that left the
   * record or started draining are drained here (in-flight requests finish), new ones attached.
   */
  sync(endpoint: Endpoint, replicas: readonly SharedReplica[]): void {
    const ready = replicas.filter((r) => r.state === 'ready');
    const listed = new Set(replicas.map((r) => r.key));
    for (const key of [...this.lost]) if (!listed.has(key)) this.lost.delete(key);
    const readyKeys = new Set(ready.map((r) => r.key));
    for (const replica of [...endpoint.replicas]) {
      const key = (replica.link as Partial<RemoteReplicaLink>).key;
      if (key !== undefined && !readyKeys.has(key)) endpoint.drainReplica(replica);
    }
    this.attachable.set(endpoint.name, ready);
    // Attached ones count even on a suspect node (they stay until it recovers or dies), so the
    // endpoint never trims a healthy replica to make up for one it cannot reach.
    const attachableCount = ready.filter((r) => !this.lost.has(r.key) && (this.attached.has(r.key) || this.cluster.membership.isRoutable(r.node, r.incarnation))).length;
    if (endpoint.desired !== attachableCount) endpoint.scaleTo(attachableCount, 'the shared replica set changed');
    else endpoint.reconcile();
  }
}
