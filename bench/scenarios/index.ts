/**
 * The scenarios `npm run bench` knows. A scenario is one object: the targets it measures (a
 * server and the load to put on it) and the target its ratios are taken against. Every target of
 * a scenario is measured in the same run, in alternating order across repetitions. To add one,
 * write bench/scenarios/<name>.ts exporting a `Scenario` and list it here.
 */
import type { WsExchange } from '../lib/ws-load.js';
import type { ServerId } from '../lib/servers.js';
import { echoScenario } from './echo.js';
import { fileScenario } from './file.js';
import { latencyScenario } from './latency.js';
import { mlpScenario } from './mlp.js';
import { remoteScenario } from './remote.js';
import { streamHttpScenario } from './stream-http.js';
import { streamWsScenario } from './stream-ws.js';

export interface HttpPlan {
  kind: 'http';
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** False for a body that is not the right answer (counted as an error). */
  verifyBody?: (body: string) => boolean;
  /** Time the arrivals of body bytes (first chunk, gaps). */
  stream?: boolean;
  /** Large bodies (files): measured by bytes-load.ts, since autocannon would measure its own body handling. */
  largeBodies?: boolean;
  /** One request at a time on one connection, timed by serial-load.ts (a lone request's latency). */
  oneAtATime?: boolean;
}

export interface WsPlan {
  kind: 'ws';
  path: string;
  exchange: WsExchange;
  /** Requests in flight per socket (the run's --connections is the number of sockets). */
  inFlightPerSocket: number;
}

export interface Target {
  /** The row's name in the report, unique within its scenario. */
  name: string;
  server: ServerId;
  load: HttpPlan | WsPlan;
}

export interface Scenario {
  name: string;
  description: string;
  targets: Target[];
  /** The name of the target every ratio in this scenario is taken against. */
  baseline: string;
  /** Connections for this scenario whatever --connections says (the latency of one request needs 1). */
  connections?: number;
  /** `added-latency`: the ratio column is the p50 a target adds over the baseline's, in µs (default: req/s over the baseline's). */
  compare?: 'throughput' | 'added-latency';
}

export const SCENARIOS: readonly Scenario[] = [echoScenario, latencyScenario, mlpScenario, streamHttpScenario, streamWsScenario, fileScenario, remoteScenario];
