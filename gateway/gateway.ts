/**
 * The gateway process: endpoints from the config, their replicas, the uWS app, and shutdown.
 * `Gateway.start(config)` is what `switchyard serve` and the tests call.
 *
 * With a `cluster:` section the gateway joins NATS, places replicas on node agents as well as its
 * own devices (ClusterReplicaFactory), and follows membership: a node that joins or recovers may
 * take replicas an endpoint is short of, a dead node's replicas are re-placed, a draining node's
 * replicas are drained and re-placed elsewhere.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import { discoverDevices, type DeviceInfo, type DiscoverOptions } from '../native/devices.js';
import { loadUws, type us_listen_socket } from '../native/uws.js';
import { AutoscaleController } from './autoscaler/controller.js';
import { ClusterReplicaFactory, clusterView } from './cluster/cluster-factory.js';
import { ClusterConnection, type ConnectionStatus } from '../workers/cluster/connection.js';
import { SwitchyardError } from '../workers/protocol/errors.js';
import { connectOptionsFromConfig } from './cluster/connect-options.js';
import { timingsFromConfig, type MembershipEvent } from './cluster/membership.js';
import { RemoteCluster } from './cluster/remote-link.js';
import { ConfigError } from './config/load.js';
import type { Config, EndpointConfig } from './config/schema.js';
import { Endpoint, type EndpointObserver, type ReplicaFactory } from './endpoints/endpoint.js';
import { Federation } from './federation/federation.js';
import { LocalReplicaFactory, localPlacementProblem, outputDirOf } from './endpoints/local-replicas.js';
import { defaultOutputRoot, isMemoryBacked } from '../workers/pool/output-folder.js';
import { setPollWindow } from '../workers/pool/polling.js';
import { installRoutes } from './http/app.js';
import { CLOSE_GOING_AWAY, type OpenWebSockets } from './http/websocket.js';
import { StallWatch } from './http/stall-watch.js';
import { GatewayMetrics } from './metrics/metrics.js';

export interface GatewayOptions {
  /** Overrides server.port (0 = any free port). */
  port?: number | undefined;
  host?: string | undefined;
  logger?: Logger;
  /** Where new replicas come from; defaults to worker threads on this machine (and the cluster's nodes with `config.cluster`). */
  factory?: ReplicaFactory;
  /** How this machine's devices are found (default: `nvidia-smi` on PATH, onnxruntime's providers when an ONNX endpoint wants a GPU). */
  deviceDiscovery?: DiscoverOptions;
}

/**
 * This machine's devices. onnxruntime is asked which providers load only when an ONNX endpoint
 * lists a device other than the CPU (the CPU provider always loads), so a gateway that needs no
 * GPU for ONNX never loads onnxruntime on its event-loop thread.
 */
export async function discoverLocalDevices(config: Readonly<Config>, options: DiscoverOptions = {}): Promise<DeviceInfo[]> {
  const probe = Object.values(config.endpoints).some((e) => e.model !== undefined && e.devices.some((d) => d !== 'cpu'));
  if (probe || options.onnxProviders) return discoverDevices(options);
  const devices = await discoverDevices({ ...options, onnxProviders: async () => ['cpu'] });
  // Not probed: say nothing rather than "does not load".
  return devices.map((d) => (d.kind === 'cpu' ? d : { id: d.id, kind: d.kind, name: d.name, memoryBytes: d.memoryBytes }));
}

/** Refuses, at start, an endpoint that can only run here and that no device of this machine can run. */
function checkLocalPlacement(config: Readonly<Config>, devices: readonly DeviceInfo[]): void {
  for (const [name, endpoint] of Object.entries(config.endpoints)) {
    if (config.cluster && endpoint.placement !== 'local') continue;
    const problem = localPlacementProblem(endpoint, devices);
    if (problem) throw new ConfigError(`endpoints.${name}.devices: ${problem}`);
  }
}

/** One endpoint in `GET /readyz`. */
export interface EndpointReadiness {
  ready: number;
  desired: number;
  nodes: string[];
  /** Replicas given up on since start: lost (thread or node died) and wedged (did not stop a request past its deadline). */
  replaced: { lost: number; wedged: number };
  /** Replicas being terminated because they wedged. */
  wedged?: number;
  /** Consecutive failed starts. */
  start_failures?: number;
  /** Restarts are backing off: the next start in this many ms. */
  restart_in_ms?: number;
}

/** The gateway's part of a cluster: its NATS connection, its view of the nodes, its placements. */
interface GatewayCluster {
  connection: ClusterConnection;
  remote: RemoteCluster;
  factory: ClusterReplicaFactory;
  /** With `cluster.federation`: the shared deployment and replica sets. */
  federation?: Federation;
}

async function openCluster(config: Readonly<Config>, localDevices: readonly DeviceInfo[]): Promise<GatewayCluster | undefined> {
  if (!config.cluster) {
    const remoteOnly = Object.entries(config.endpoints).find(([, e]) => e.placement === 'remote');
    if (remoteOnly) throw new ConfigError(`endpoints.${remoteOnly[0]}.placement: "remote" needs a cluster (a cluster: section or --nats)`);
    return undefined;
  }
  const connection = await ClusterConnection.connect(connectOptionsFromConfig(config.cluster, `switchyard-gateway-${config.server.region}`));
  try {
    const remote = await RemoteCluster.open(connection, { timings: timingsFromConfig(config.cluster) });
    const factory = new ClusterReplicaFactory({ cluster: clusterView(remote), region: config.server.region, localDevices });
    if (!config.cluster.federation) return { connection, remote, factory };
    const federation = await Federation.open(remote, config.server.region, { leaseMs: config.cluster.federation.lease_ms });
    // Endpoints in this gateway's config are deployed; every gateway then serves what is stored.
    if (Object.keys(config.endpoints).length > 0) await federation.deploymentStore.publish(config);
    return { connection, remote, factory, federation };
  } catch (err) {
    await connection.close();
    throw err;
  }
}

export class Gateway {
  readonly endpoints = new Map<string, Endpoint>();
  readonly autoscalers = new Map<string, AutoscaleController>();
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  port = 0;
  private listenSocket: us_listen_socket | undefined;
  private webSockets: OpenWebSockets | undefined;
  private draining = false;
  /** Running while the NATS connection fails over to another server (see onClusterStatus). */
  private failoverTimer: NodeJS.Timeout | undefined;
  private readonly stalls: StallWatch;
  private readonly startedAt = Date.now();
  private readonly uws;
  /** Membership events re-place replicas only once the first placement ran. */
  private placing = false;
  /** Creates an endpoint whose replicas come from the gateway's factory (a federation adds them as deployed). */
  readonly addEndpoint: (name: string, config: EndpointConfig) => Endpoint;

  private constructor(
    readonly config: Readonly<Config>,
    private readonly options: GatewayOptions,
    private readonly cluster: GatewayCluster | undefined,
    /** This machine's devices, as found at start. */
    readonly devices: readonly DeviceInfo[],
  ) {
    this.uws = loadUws({ allowJsFallback: config.server.allow_js_fallback });
    this.log = options.logger ?? pino({ level: config.server.log_level, base: { svc: 'switchyard' } }, pino.destination(2));
    this.stalls = new StallWatch(config.server.stall_timeout_ms);
    setPollWindow(config.server.poll_us);
    this.metrics = new GatewayMetrics(
      () => this.endpoints.values(),
      () => this.webSockets?.load(),
    );
    const observer: EndpointObserver = {
      onFinished: (endpoint, status, latencyMs) => this.metrics.onFinished(endpoint, status, latencyMs),
      onReplicaEvent: (endpoint, event) => this.metrics.onReplicaEvent(endpoint, event),
      onLog: (level, msg, fields) => this.log[level](fields ?? {}, msg),
    };
    const factory = options.factory ?? cluster?.federation?.factory ?? cluster?.factory ?? new LocalReplicaFactory(config.server.region, devices);
    this.addEndpoint = (name, endpointConfig) => {
      // Server-wide limits an endpoint does not set itself travel with its config (to its replicas too).
      const resolved = { ...endpointConfig, max_response_bytes: endpointConfig.max_response_bytes ?? config.server.max_response_bytes };
      const endpoint = new Endpoint(name, resolved, factory, observer);
      this.endpoints.set(name, endpoint);
      return endpoint;
    };
    // A federated gateway serves the stored deployment: its endpoints come from the federation, and their leaders scale them.
    for (const [name, endpointConfig] of Object.entries(cluster?.federation ? {} : config.endpoints)) {
      const endpoint = this.addEndpoint(name, endpointConfig);
      if (endpointConfig.autoscaling) {
        const controller = new AutoscaleController(endpoint, {
          log: (d) => {
            if (d.applied) {
              this.metrics.onScaleDecision(name, d.reason);
              this.log.info({ endpoint: name, current: d.current, desired: d.desired, reason: d.reason, detail: d.detail, observed: d.observed }, 'autoscale');
            }
          },
          onError: (err) => this.log.error({ endpoint: name, err: String(err) }, 'autoscaler tick failed'),
        });
        this.autoscalers.set(name, controller);
        endpoint.onColdStart = () => controller.tickNow();
      }
    }
  }

  static async start(config: Readonly<Config>, options: GatewayOptions = {}): Promise<Gateway> {
    const devices = await discoverLocalDevices(config, options.deviceDiscovery);
    if (!options.factory) checkLocalPlacement(config, devices);
    const cluster = options.factory ? undefined : await openCluster(config, devices);
    const gateway = new Gateway(config, options, cluster, devices);
    try {
      await gateway.listen();
    } catch (err) {
      await gateway.closeCluster();
      throw err;
    }
    if (cluster && config.cluster) {
      cluster.remote.onMembership((event) => gateway.onMembership(event));
      gateway.metrics.onClusterConnection('connected');
      cluster.connection.onStatus((status) => gateway.onClusterStatus(status, cluster));
      // Nodes answer the discover sent on open at once: give them a moment, so the first placement
      // sees every node (and each endpoint's preferred region) instead of the first to answer.
      await delay(2 * config.cluster.heartbeat_interval_ms);
    }
    gateway.placing = true;
    await cluster?.federation?.start({
      endpoints: gateway.endpoints,
      addEndpoint: gateway.addEndpoint,
      removeEndpoint: (name) => gateway.removeEndpoint(name),
      url: () => `http://${config.server.host}:${gateway.port}`,
      log: (level, msg, fields) => gateway.log[level](fields ?? {}, msg),
    });
    for (const endpoint of gateway.endpoints.values()) endpoint.reconcile();
    for (const controller of gateway.autoscalers.values()) controller.start();
    return gateway;
  }

  /**
   * Losing NATS cuts off every node agent: their requests fail fast instead of waiting out
   * deadlines. Where another server of the cluster is known, the loss is first a failover: requests
   * wait up to `failover_grace_ms` for the reconnection instead of failing, and those in flight
   * are sent again once it is back (answers meanwhile had nowhere to go).
   */
  private onClusterStatus(status: ConnectionStatus, cluster: { connection: ClusterConnection }): void {
    // Shutting down closes the connection on purpose.
    if (this.draining) return;
    if (status.type === 'disconnected' || status.type === 'closed') {
      if (status.type === 'disconnected') this.metrics.onClusterConnection('disconnected');
      this.log.warn({ ...(status.type === 'disconnected' ? { server: status.server } : {}) }, status.type === 'closed' ? 'NATS connection closed' : 'NATS connection lost');
      const graceMs = this.config.cluster?.failover_grace_ms ?? 0;
      if (status.type === 'disconnected' && cluster.connection.canFailOver && graceMs > 0) {
        for (const endpoint of this.endpoints.values()) endpoint.clusterInterrupted();
        this.failoverTimer ??= setTimeout(() => {
          this.failoverTimer = undefined;
          if (cluster.connection.state === 'connected' || this.draining) return;
          this.log.warn({ graceMs }, 'NATS failover took longer than failover_grace_ms: the cluster is unreachable');
          for (const endpoint of this.endpoints.values()) endpoint.setClusterReachable(false);
        }, graceMs);
        this.failoverTimer.unref();
        return;
      }
      this.clearFailover();
      for (const endpoint of this.endpoints.values()) endpoint.setClusterReachable(false);
    } else if (status.type === 'reconnected') {
      this.clearFailover();
      this.metrics.onClusterConnection('reconnected');
      this.log.info({ server: status.server }, 'NATS connection restored');
      for (const endpoint of this.endpoints.values()) endpoint.setClusterReachable(true);
    }
  }

  private clearFailover(): void {
    if (this.failoverTimer) clearTimeout(this.failoverTimer);
    this.failoverTimer = undefined;
  }

  private onMembership(event: MembershipEvent): void {
    if (event.type === 'joined') {
      this.log.info({ node: event.node.name, region: event.node.region, devices: event.node.devices.map((d) => d.id) }, 'node joined');
    } else if (event.type === 'dead' || event.type === 'draining' || event.type === 'suspect') {
      this.log[event.type === 'suspect' ? 'info' : 'warn']({ node: event.name, ...(event.type === 'dead' ? { reason: event.reason } : {}) }, `node ${event.type}`);
    }
    if (event.type === 'unknown' || event.type === 'stale') return;
    const node = event.type === 'joined' ? event.node.name : event.name;
    for (const endpoint of this.endpoints.values()) endpoint.onNodeChange(node, event.type, this.placing && !this.draining);
  }

  private listen(): Promise<void> {
    const { uws } = this.uws;
    const app = uws.App();
    this.webSockets = installRoutes(app, {
      endpoints: this.endpoints,
      budget: { maxInFlight: this.config.server.ws_max_in_flight, maxBufferedBytes: this.config.server.ws_max_buffered_bytes, stalls: this.stalls },
      region: this.config.server.region,
      maxBodyBytes: this.config.server.max_body_bytes,
      isDraining: () => this.draining,
      readiness: () => this.readiness(),
      describe: () => this.describe(),
      metrics: () => this.metrics.exposition(),
      cors: this.config.server.cors,
    });
    const host = this.options.host ?? this.config.server.host;
    const port = this.options.port ?? this.config.server.port;
    return new Promise((resolve, reject) => {
      app.listen(host, port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${host}:${port} (in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        this.port = uws.us_socket_local_port(socket);
        resolve();
      });
    });
  }

  /**
   * Takes an endpoint out of service (a federation's deployment dropped it): requests for it get
   * 404 from now on, and so do those still waiting for a replica; those on a replica finish
   * (within `shutdown_grace_ms`), then it closes.
   */
  removeEndpoint(name: string): void {
    const endpoint = this.endpoints.get(name);
    if (!endpoint) return;
    this.endpoints.delete(name);
    this.log.info({ endpoint: name }, 'endpoint removed from the deployment: draining');
    endpoint.remove(new SwitchyardError('SY_NOT_FOUND', `endpoint "${name}" was removed from the deployment`));
    void endpoint
      .drain(this.config.server.shutdown_grace_ms)
      .then(() => endpoint.close())
      .catch((err: unknown) => this.log.error({ endpoint: name, err: String(err) }, 'closing a removed endpoint failed'));
  }

  /** Resolves once every endpoint that should have replicas has a ready one (or `timeoutMs` passed). */
  async whenReady(timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.readiness().ready) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  /**
   * Per endpoint: ready replicas, where they run, and what is wrong. Why starts fail (the setup()
   * error) is not here: /readyz is unauthenticated; it is in the logs and `GET /v1/endpoints`.
   */
  readiness(): { ready: boolean; endpoints: Record<string, EndpointReadiness> } {
    let ready = true;
    const endpoints: Record<string, EndpointReadiness> = {};
    for (const ep of this.endpoints.values()) {
      const view = ep.view();
      const n = view.replicas.filter((r) => r.state === 'ready').length;
      // An endpoint allowed to sit at zero serves by starting a replica on demand.
      const ok = n > 0 || (view.desired === 0 && ep.config.autoscaling?.min_replicas === 0);
      if (!ok) ready = false;
      // Where its ready replicas run ("local" is this process).
      const nodes = [...new Set(view.replicas.filter((r) => r.state === 'ready').map((r) => r.node))].sort();
      const wedged = view.replicas.filter((r) => r.state === 'wedged').length;
      endpoints[ep.name] = {
        ready: n,
        desired: view.desired,
        nodes,
        replaced: view.replaced,
        ...(wedged > 0 ? { wedged } : {}),
        ...(view.startFailures > 0 ? { start_failures: view.startFailures } : {}),
        ...(view.restartInMs > 0 ? { restart_in_ms: view.restartInMs } : {}),
      };
    }
    return { ready, endpoints };
  }

  /** The nodes this gateway sees, for `GET /v1/endpoints`. */
  private describeCluster(): unknown {
    if (!this.cluster) return undefined;
    const { connection, remote, factory } = this.cluster;
    const now = Date.now();
    return {
      gateway: remote.gatewayId,
      prefix: connection.subjects.prefix,
      connection: connection.state,
      nodes: remote.nodes().map((n) => ({
        name: n.name,
        region: n.region,
        state: n.draining ? 'draining' : n.state,
        devices: n.devices.map((d) => ({ id: d.id, kind: d.kind, name: d.name })),
        max_replicas: n.maxReplicas,
        replicas: Object.keys(n.inFlight).length,
        replicas_of_this_gateway: factory.placedOn(n.name),
        in_flight: Object.values(n.inFlight).reduce((a, b) => a + b, 0),
        last_seen_ms_ago: Math.max(0, now - n.lastSeenAt),
      })),
    };
  }

  describe(): unknown {
    return {
      region: this.config.server.region,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      draining: this.draining,
      // The gateway's own devices; `onnx` says whether onnxruntime's provider loads (absent: not probed).
      devices: this.devices.map((d) => ({ id: d.id, kind: d.kind, name: d.name, memory_bytes: d.memoryBytes, ...(d.onnx === undefined ? {} : { onnx: d.onnx }) })),
      ...(this.cluster ? { cluster: this.describeCluster() } : {}),
      ...(this.cluster?.federation ? { federation: this.cluster.federation.describe() } : {}),
      endpoints: [...this.endpoints.values()].map((ep) => {
        const view = ep.view();
        return {
          name: ep.name,
          source: ep.config.model ? { model: ep.config.model } : { predictor: ep.config.predictor },
          devices: ep.config.devices,
          placement: ep.config.placement,
          regions: ep.config.regions,
          desired: view.desired,
          in_flight: view.inFlight,
          queued: view.queued,
          requests: { admitted: view.admitted, completed: view.completed },
          latency_ms: this.metrics.percentiles(ep.name),
          ...(view.lastStartError === undefined ? {} : { last_start_error: view.lastStartError }),
          start_failures: view.startFailures,
          ...(view.restartInMs > 0 ? { restart_in_ms: view.restartInMs } : {}),
          replaced: view.replaced,
          ...(ep.reconnect ? { stream_reconnect: ep.reconnect.usage() } : {}),
          unhandled_rejections: view.unhandledRejections,
          ...(this.autoscalers.has(ep.name)
            ? { autoscaling: { knobs: ep.config.autoscaling, state: this.autoscalers.get(ep.name)!.state(), decisions: this.autoscalers.get(ep.name)!.decisions().slice(-20) } }
            : {}),
          replicas: view.replicas,
          ...(ep.config.produces.length > 0 ? { output_dir: this.describeOutputDir(ep.name, ep.config) } : {}),
        };
      }),
    };
  }

  /** Where this endpoint's local replicas write the files they answer with, and whether it is memory. */
  private describeOutputDir(name: string, config: EndpointConfig): { path: string; memory_backed: boolean; default: boolean } {
    const dir = outputDirOf(name, config);
    return { path: dir, memory_backed: config.output_dir === undefined ? defaultOutputRoot().memoryBacked : isMemoryBacked(dir), default: config.output_dir === undefined };
  }

  /** Stops accepting, lets in-flight requests finish (bounded by `graceMs`), stops replicas. */
  async shutdown(graceMs = this.config.server.shutdown_grace_ms): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const t0 = performance.now();
    for (const controller of this.autoscalers.values()) controller.stop();
    if (this.listenSocket) {
      this.uws.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
    await Promise.all([...this.endpoints.values()].map((ep) => ep.drain(graceMs)));
    // Requests on them are answered by now: sockets close with a code, not a dropped connection.
    this.webSockets?.closeAll(CLOSE_GOING_AWAY, 'the gateway is shutting down');
    await Promise.all([...this.endpoints.values()].map((ep) => ep.close()));
    await this.closeCluster();
    this.stalls.close();
    this.log.info({ ms: Math.round(performance.now() - t0) }, 'shut down');
  }

  private async closeCluster(): Promise<void> {
    this.clearFailover();
    if (!this.cluster) return;
    await this.cluster.federation?.close();
    await this.cluster.remote.close();
    await this.cluster.connection.close();
  }
}
