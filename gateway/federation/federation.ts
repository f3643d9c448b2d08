/**
 * A gateway's part in a federation: many stateless gateways serving one deployment stored in
 * JetStream (deployment.ts), routing to one replica set per endpoint (shared-replicas.ts), placed
 * and scaled by one leader per endpoint (endpoint-leader.ts) from the load every gateway
 * publishes (signal-aggregator.ts).
 *
 * Each tick (250 ms) this gateway publishes its load per endpoint, reads every endpoint's record
 * (taking a lease that expired, leading where it holds one) and makes its endpoints route to the
 * ready replicas the records list. Every second it renews its own entry in the gateways bucket
 * (a bucket whose entries expire, so a dead gateway drops out) and rereads the deployment, so a
 * `switchyard deploy` reaches every gateway within a couple of seconds.
 */
import { performance } from 'node:perf_hooks';
import type { KV } from '@nats-io/kv';
import { openKv } from '../../workers/cluster/buckets.js';
import type { Subscription } from '@nats-io/transport-node';
import type { EndpointConfig } from '../config/schema.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { RemoteCluster } from '../cluster/remote-link.js';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { isSubjectToken, type GatewaySignals } from '../../workers/cluster/subjects.js';
import { DeploymentStore, decodeJson, encodeJson, type StoredDeployment, type StoredEndpoint } from './deployment.js';
import { EndpointLeader, type LeaderTimings } from './endpoint-leader.js';
import { SharedReplicaFactory } from './shared-replicas.js';
import { SignalAggregator } from './signal-aggregator.js';

const TICK_MS = 250;
const REGISTRY_MS = 1_000;
/** Gateway entries expire 5 s after their last renewal. */
export const GATEWAYS_BUCKET = { history: 1, storage: 'memory', ttl: 5_000 } as const;
export const REPLICAS_BUCKET = { history: 1, storage: 'file' } as const;

export interface GatewayEntry {
  id: string;
  region: string;
  url: string;
  startedAt: string;
  /** In-flight + queued requests per endpoint. */
  load: Record<string, number>;
  leading: string[];
}

export interface FederationHost {
  readonly endpoints: Map<string, Endpoint>;
  addEndpoint(name: string, config: EndpointConfig): Endpoint;
  /** Takes an endpoint out of routing (requests for it get 404); its in-flight requests finish. */
  removeEndpoint(name: string): void;
  url(): string;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

export interface FederationOptions {
  leaseMs: number;
}

export class Federation {
  readonly factory: SharedReplicaFactory;
  private readonly leaders = new Map<string, EndpointLeader>();
  private readonly aggregators = new Map<string, SignalAggregator>();
  private deployment: StoredDeployment | undefined;
  private gatewayList: GatewayEntry[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private sub: Subscription | undefined;
  private ticking = false;
  private closed = false;
  private readonly startedAt = new Date().toISOString();
  private readonly timings: LeaderTimings;

  private constructor(
    private readonly cluster: RemoteCluster,
    private readonly region: string,
    private readonly store: DeploymentStore,
    private readonly replicasKv: KV,
    private readonly gatewaysKv: KV,
    options: FederationOptions,
  ) {
    this.factory = new SharedReplicaFactory(cluster);
    this.timings = { leaseMs: options.leaseMs, missingGraceMs: 2_000, minDrainMs: 1_000, drainTimeoutMs: 10_000, placementTimeoutMs: 120_000, removalGraceMs: 3 * REGISTRY_MS };
  }

  static async open(cluster: RemoteCluster, region: string, options: FederationOptions): Promise<Federation> {
    const s = cluster.connection.subjects;
    const store = await DeploymentStore.open(cluster.connection);
    const replicas = await openKv(cluster.connection.nc, s.replicasBucket, REPLICAS_BUCKET);
    const gateways = await openKv(cluster.connection.nc, s.gatewaysBucket, GATEWAYS_BUCKET);
    return new Federation(cluster, region, store, replicas, gateways, options);
  }

  get deploymentStore(): DeploymentStore {
    return this.store;
  }

  /** Loads the deployment, creates its endpoints on `host`, and starts following and leading. */
  async start(host: FederationHost): Promise<void> {
    this.sub = this.cluster.connection.nc.subscribe(this.cluster.connection.subjects.signals, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.onSignals(unpack<GatewaySignals>(msg.data));
        } catch {
          // Undecodable input from the network is dropped.
        }
      },
    });
    await this.reload(host);
    await this.tick(host);
    const every = (ms: number, run: () => Promise<void>) => {
      const timer = setInterval(() => void run().catch((err: unknown) => host.log('warn', 'federation step failed', { err: String(err) })), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(TICK_MS, () => this.tick(host));
    every(REGISTRY_MS, async () => {
      await this.register(host);
      await this.reload(host);
    });
  }

  private onSignals(msg: GatewaySignals): void {
    if (!isSubjectToken(msg?.gateway) || typeof msg.endpoints !== 'object' || msg.endpoints === null) return;
    const now = performance.now();
    for (const [name, load] of Object.entries(msg.endpoints)) this.aggregator(name).report(msg.gateway, load, now);
  }

  private aggregator(name: string): SignalAggregator {
    let aggregator = this.aggregators.get(name);
    if (!aggregator) this.aggregators.set(name, (aggregator = new SignalAggregator(3 * REGISTRY_MS)));
    return aggregator;
  }

  /** Keys of every endpoint's replicas on `node`, as the records say. */
  private occupied(node: string): Set<string> {
    const keys = new Set<string>();
    for (const leader of this.leaders.values()) for (const r of leader.record?.replicas ?? []) if (r.node === node) keys.add(r.key);
    return keys;
  }

  private async reload(host: FederationHost): Promise<void> {
    const loaded = await this.store.load();
    if (!loaded) return;
    this.deployment = loaded.deployment;
    for (const stored of loaded.endpoints) this.follow(host, stored);
    // Gone from the deployment: no gateway routes to it; its leader drains and stops its replicas.
    const deployed = new Set(loaded.deployment.endpoints);
    for (const leader of this.leaders.values()) if (!deployed.has(leader.name)) leader.retire();
    for (const name of [...host.endpoints.keys()]) if (!deployed.has(name)) host.removeEndpoint(name);
  }

  private follow(host: FederationHost, stored: StoredEndpoint): void {
    if (!host.endpoints.has(stored.name)) {
      // With no replica ready yet (a new deployment, a region lost, scaled to zero), requests wait
      // for one, bounded by their deadline; the leader sees them in this gateway's signals.
      host.addEndpoint(stored.name, stored.config).onColdStart = () => undefined;
    }
    const known = this.leaders.get(stored.name);
    if (known) {
      known.update(stored);
      return;
    }
    this.leaders.set(
      stored.name,
      new EndpointLeader(stored, {
        kv: this.replicasKv,
        cluster: this.cluster,
        region: this.region,
        timings: this.timings,
        aggregator: this.aggregator(stored.name),
        occupied: (node) => this.occupied(node),
        log: (level, msg, fields) => host.log(level, msg, fields),
      }),
    );
  }

  private async tick(host: FederationHost): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      this.publishSignals(host);
      await Promise.all(
        [...this.leaders.values()].map(async (leader) => {
          try {
            await leader.tick();
          } catch (err) {
            host.log('warn', 'reading the replica set failed', { endpoint: leader.name, err: String(err) });
          }
          if (leader.finished) {
            this.leaders.delete(leader.name);
            this.aggregators.delete(leader.name);
            this.factory.forget(leader.name);
            return;
          }
          const endpoint = host.endpoints.get(leader.name);
          if (endpoint && leader.record) this.factory.sync(endpoint, leader.record.replicas);
        }),
      );
    } finally {
      this.ticking = false;
    }
  }

  private publishSignals(host: FederationHost): void {
    const endpoints: GatewaySignals['endpoints'] = {};
    for (const [name, ep] of host.endpoints) {
      const s = ep.signals();
      endpoints[name] = { integral: s.concurrencyIntegral, arrivals: s.arrivals, inFlight: s.inFlight, queued: s.queued };
    }
    const msg: GatewaySignals = { gateway: this.cluster.gatewayId, region: this.region, endpoints };
    this.cluster.connection.publish(this.cluster.connection.subjects.signals, pack(msg));
  }

  private async register(host: FederationHost): Promise<void> {
    const load: Record<string, number> = {};
    for (const [name, ep] of host.endpoints) load[name] = ep.inFlight + ep.queued;
    const entry: GatewayEntry = {
      id: this.cluster.gatewayId,
      region: this.region,
      url: host.url(),
      startedAt: this.startedAt,
      load,
      leading: [...this.leaders.values()].filter((l) => l.isLeader).map((l) => l.name),
    };
    await this.gatewaysKv.put(`gw.${this.cluster.gatewayId}`, encodeJson(entry));
    this.gatewayList = await listGateways(this.gatewaysKv);
  }

  describe(): unknown {
    return {
      gateway: this.cluster.gatewayId,
      deployed_at: this.deployment?.deployedAt ?? null,
      gateways: this.gatewayList,
      endpoints: Object.fromEntries(
        [...this.leaders.values()].map((l) => [
          l.name,
          {
            leader: l.record ? { gateway: l.record.leader, region: l.record.leaderRegion, token: l.record.token } : null,
            this_gateway_leads: l.isLeader,
            version: l.record?.version ?? null,
            desired: l.record?.desired ?? null,
            replicas: l.record?.replicas ?? [],
            ...(l.isLeader && l.autoscalerState ? { autoscaler: l.autoscalerState } : {}),
            ...(l.lastError ? { last_start_error: l.lastError } : {}),
          },
        ]),
      ),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const leader of this.leaders.values()) leader.stop();
    this.sub?.unsubscribe();
    // Cut off from NATS, the entry cannot be deleted (a try would wait out a timeout): it expires.
    if (this.cluster.connection.state === 'connected') await this.gatewaysKv.delete(`gw.${this.cluster.gatewayId}`).catch(() => undefined);
  }
}

/** The gateways whose entries have not expired. */
export async function listGateways(kv: KV): Promise<GatewayEntry[]> {
  const out: GatewayEntry[] = [];
  for await (const key of await kv.keys('gw.*')) {
    const e = await kv.get(key);
    if (e && e.operation === 'PUT') out.push(decodeJson<GatewayEntry>(e.value));
  }
  return out.sort((a, b) => a.region.localeCompare(b.region) || a.id.localeCompare(b.id));
}
