/**
 * The gateway process: endpoints from the config, their replicas, the uWS app, and shutdown.
 * `Gateway.start(config)` is what `switchyard serve` and the tests call.
 */
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import { loadUws, type us_listen_socket } from '../native/uws.js';
import type { Config } from './config/schema.js';
import { Endpoint, type EndpointObserver, type ReplicaFactory } from './endpoints/endpoint.js';
import { LocalReplicaFactory } from './endpoints/local-replicas.js';
import { installRoutes } from './http/app.js';
import { GatewayMetrics } from './metrics/metrics.js';

export interface GatewayOptions {
  /** Overrides server.port (0 = any free port). */
  port?: number;
  host?: string;
  logger?: Logger;
  /** Where new replicas come from; defaults to worker threads on this machine. */
  factory?: ReplicaFactory;
}

export class Gateway {
  readonly endpoints = new Map<string, Endpoint>();
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  port = 0;
  private listenSocket: us_listen_socket | undefined;
  private draining = false;
  private readonly startedAt = Date.now();
  private readonly uws;

  private constructor(
    readonly config: Readonly<Config>,
    private readonly options: GatewayOptions,
  ) {
    this.uws = loadUws({ allowJsFallback: config.server.allow_js_fallback });
    this.log = options.logger ?? pino({ level: config.server.log_level, base: { svc: 'switchyard' } }, pino.destination(2));
    this.metrics = new GatewayMetrics(() => this.endpoints.values());
    const observer: EndpointObserver = {
      onFinished: (endpoint, status, latencyMs) => this.metrics.onFinished(endpoint, status, latencyMs),
      onLog: (level, msg, fields) => this.log[level](fields ?? {}, msg),
    };
    const factory = options.factory ?? new LocalReplicaFactory(config.server.region);
    for (const [name, endpointConfig] of Object.entries(config.endpoints)) {
      this.endpoints.set(name, new Endpoint(name, endpointConfig, factory, observer));
    }
  }

  static async start(config: Readonly<Config>, options: GatewayOptions = {}): Promise<Gateway> {
    const gateway = new Gateway(config, options);
    await gateway.listen();
    for (const endpoint of gateway.endpoints.values()) endpoint.reconcile();
    return gateway;
  }

  private listen(): Promise<void> {
    const { uws } = this.uws;
    const app = uws.App();
    installRoutes(app, {
      endpoints: this.endpoints,
      region: this.config.server.region,
      maxBodyBytes: this.config.server.max_body_bytes,
      isDraining: () => this.draining,
      readiness: () => this.readiness(),
      describe: () => this.describe(),
      metrics: () => this.metrics.exposition(),
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

  /** Resolves once every endpoint that should have replicas has a ready one (or `timeoutMs` passed). */
  async whenReady(timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.readiness().ready) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  readiness(): { ready: boolean; endpoints: Record<string, { ready: number; desired: number; error?: string }> } {
    let ready = true;
    const endpoints: Record<string, { ready: number; desired: number; error?: string }> = {};
    for (const ep of this.endpoints.values()) {
      const n = ep.readyCount;
      // An endpoint allowed to sit at zero serves by starting a replica on demand.
      const ok = n > 0 || (ep.desired === 0 && ep.config.autoscaling?.min_replicas === 0);
      if (!ok) ready = false;
      endpoints[ep.name] = { ready: n, desired: ep.desired, ...(ep.lastStartError ? { error: ep.lastStartError } : {}) };
    }
    return { ready, endpoints };
  }

  describe(): unknown {
    return {
      region: this.config.server.region,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      draining: this.draining,
      endpoints: [...this.endpoints.values()].map((ep) => ({
        name: ep.name,
        source: ep.config.model ? { model: ep.config.model } : { predictor: ep.config.predictor },
        devices: ep.config.devices,
        desired: ep.desired,
        in_flight: ep.inFlight,
        queued: ep.queued,
        requests: { admitted: ep.tracker.arrivals, completed: ep.tracker.completed },
        latency_ms: this.metrics.percentiles(ep.name),
        ...(ep.lastStartError ? { last_start_error: ep.lastStartError } : {}),
        replicas: ep.replicas.map((r) => ({
          id: r.id,
          state: r.state,
          device: r.link.device,
          node: r.link.node,
          region: r.link.region,
          in_flight: r.inFlight,
          served: r.served,
          latency_ms: Math.round(r.latencyMs * 1000) / 1000,
          started_at: new Date(r.startedAt).toISOString(),
        })),
      })),
    };
  }

  /** Stops accepting, lets in-flight requests finish (bounded by `graceMs`), stops replicas. */
  async shutdown(graceMs = this.config.server.shutdown_grace_ms): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const t0 = performance.now();
    if (this.listenSocket) {
      this.uws.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
    await Promise.all([...this.endpoints.values()].map((ep) => ep.drain(graceMs)));
    await Promise.all([...this.endpoints.values()].map((ep) => ep.close()));
    this.log.info({ ms: Math.round(performance.now() - t0) }, 'shut down');
  }
}
