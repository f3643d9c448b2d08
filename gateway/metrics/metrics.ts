/**
 * Metrics: Prometheus exposition through prom-client, and hdr histograms for the percentiles shown
 * in `GET /v1/endpoints`. The hot path touches only pre-resolved children (no label hashing per
 * request); gauges are computed when scraped.
 */
import * as hdr from 'hdr-histogram-js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Endpoint } from '../endpoints/endpoint.js';
import type { WebSocketLoad } from '../http/websocket.js';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface EndpointSeries {
  byStatus: Map<number, Counter.Internal>;
  latency: Histogram.Internal<'endpoint'>;
  hdr: hdr.Histogram;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'endpoint' | 'status'>;
  private readonly latency: Histogram<'endpoint'>;
  private readonly series = new Map<string, EndpointSeries>();
  private readonly decisions: Counter<'endpoint' | 'reason'>;
  private readonly clusterEvents: Counter<'event'>;
  private clusterConnected: number | undefined;
  private readonly replacements: Counter<'endpoint' | 'reason'>;
  private readonly unhandledRejections: Counter<'endpoint'>;

  constructor(
    endpoints: () => Iterable<Endpoint>,
    /** What the open WebSockets hold; undefined before the server listens. */
    webSockets: () => WebSocketLoad | undefined = () => undefined,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_process_' });
    this.requests = new Counter({ name: 'switchyard_requests_total', help: 'Requests finished, by endpoint and HTTP status.', labelNames: ['endpoint', 'status'], registers });
    this.latency = new Histogram({
      name: 'switchyard_request_duration_seconds',
      help: 'Time from admission to the last byte handed to the socket, by endpoint.',
      labelNames: ['endpoint'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.replacements = new Counter({
      name: 'switchyard_replica_replacements_total',
      help: 'Replicas given up on and replaced, by endpoint and reason (lost: its thread or node died; wedged: it did not stop a request past its deadline).',
      labelNames: ['endpoint', 'reason'],
      registers,
    });
    this.unhandledRejections = new Counter({
      name: 'switchyard_predictor_unhandled_rejections_total',
      help: 'Promises a predictor rejected with no handler; logged, and the replica kept serving.',
      labelNames: ['endpoint'],
      registers,
    });
    this.decisions = new Counter({
      name: 'switchyard_autoscaler_decisions_total',
      help: 'Replica count changes the autoscaler applied, by endpoint and reason.',
      labelNames: ['endpoint', 'reason'],
      registers,
    });
    this.clusterEvents = new Counter({
      name: 'switchyard_cluster_connection_events_total',
      help: "Changes of the gateway's NATS connection: disconnected, reconnected.",
      labelNames: ['event'],
      registers,
    });
    const metrics = this;
    new Gauge({
      name: 'switchyard_cluster_connected',
      help: "1 while the gateway's NATS connection is up, 0 while it is down (absent without a cluster).",
      registers,
      collect() {
        if (metrics.clusterConnected !== undefined) this.set(metrics.clusterConnected);
      },
    });
    new Gauge({
      name: 'switchyard_in_flight_requests',
      help: 'Requests holding a replica concurrency token.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        for (const ep of endpoints()) this.set({ endpoint: ep.name }, ep.inFlight);
      },
    });
    const wsGauge = (name: string, help: string, field: keyof WebSocketLoad) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(webSockets()?.[field] ?? 0);
        },
      });
    wsGauge('switchyard_ws_unread_reply_bytes', 'Reply bytes the gateway holds for WebSocket clients that have not read them (queued, and in uWS buffers).', 'unreadBytes');
    wsGauge(
      'switchyard_ws_expected_reply_bytes',
      "Expected answer bytes of the unary WebSocket requests running on replicas (each socket's largest recent answer per request); counted against server.ws_max_buffered_bytes with the unread ones.",
      'expectedBytes',
    );
    wsGauge('switchyard_ws_held_requests', 'WebSocket requests held in the gateway, not yet sent to a replica, until their client reads its earlier replies (server.ws_max_buffered_bytes).', 'heldRequests');
    new Gauge({
      name: 'switchyard_queue_depth',
      help: 'Requests waiting for a replica.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        for (const ep of endpoints()) this.set({ endpoint: ep.name }, ep.queued);
      },
    });
    new Gauge({
      name: 'switchyard_replicas',
      help: 'Replicas by lifecycle state.',
      labelNames: ['endpoint', 'state'],
      registers,
      collect() {
        this.reset();
        for (const ep of endpoints()) {
          const counts: Record<string, number> = { starting: 0, ready: 0, draining: 0, wedged: 0 };
          for (const r of ep.replicas) counts[r.state] = (counts[r.state] ?? 0) + 1;
          for (const [state, n] of Object.entries(counts)) this.set({ endpoint: ep.name, state }, n);
        }
      },
    });
    new Gauge({
      name: 'switchyard_desired_replicas',
      help: 'Replica count the endpoint converges to (autoscaler output).',
      labelNames: ['endpoint'],
      registers,
      collect() {
        for (const ep of endpoints()) this.set({ endpoint: ep.name }, ep.desired);
      },
    });
  }

  private seriesFor(endpoint: string): EndpointSeries {
    let s = this.series.get(endpoint);
    if (!s) {
      s = {
        byStatus: new Map(),
        latency: this.latency.labels(endpoint),
        // 1 µs .. 1 h, 3 significant digits: autocannon's choice.
        hdr: hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 }),
      };
      this.series.set(endpoint, s);
    }
    return s;
  }

  /** Hot path: one call per finished request. */
  onFinished(endpoint: string, status: number, latencyMs: number): void {
    const s = this.seriesFor(endpoint);
    let counter = s.byStatus.get(status);
    if (!counter) {
      counter = this.requests.labels(endpoint, String(status));
      s.byStatus.set(status, counter);
    }
    counter.inc();
    if (status < 400) {
      s.latency.observe(latencyMs / 1000);
      s.hdr.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
    }
  }

  onReplicaEvent(endpoint: string, event: 'lost' | 'wedged' | 'unhandled_rejection'): void {
    if (event === 'unhandled_rejection') this.unhandledRejections.inc({ endpoint });
    else this.replacements.inc({ endpoint, reason: event });
  }

  /** The gateway's NATS connection: `connected` at start, then each change. */
  onClusterConnection(event: 'connected' | 'disconnected' | 'reconnected'): void {
    this.clusterConnected = event === 'disconnected' ? 0 : 1;
    if (event !== 'connected') this.clusterEvents.inc({ event });
  }

  onScaleDecision(endpoint: string, reason: string): void {
    this.decisions.inc({ endpoint, reason });
  }

  /** Latency percentiles in ms for successful requests since start. */
  percentiles(endpoint: string): { count: number; p50: number; p90: number; p99: number; p999: number; max: number } {
    const h = this.seriesFor(endpoint).hdr;
    const at = (q: number) => h.getValueAtPercentile(q) / 1000;
    return { count: h.totalCount, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: h.maxValue / 1000 };
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
