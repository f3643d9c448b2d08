/**
 * The latency of one request: the echo at one connection, one request at a time, against raw uWS
 * (the floor of this stack) and the naive uWS → piscina server (a thread hop per request with
 * nothing else). The number that matters is what each server adds to raw uWS's p50, in µs: with
 * nothing queued, it is the price of the thread handoff and of the gateway's own work.
 */
import type { HttpPlan, Scenario } from './index.js';
import { isEchoOfHello } from './echo.js';

const echo: HttpPlan = { kind: 'http', path: '/inference/echo', body: '{"text":"hello"}', verifyBody: isEchoOfHello, oneAtATime: true };

export const latencyScenario: Scenario = {
  name: 'latency',
  description: 'POST /inference/echo {"text":"hello"}, one connection, one request at a time (bench/lib/serial-load.ts); the ratio column is the p50 added over raw-uws',
  baseline: 'raw-uws',
  connections: 1,
  compare: 'added-latency',
  targets: [
    { name: 'gateway', server: 'gateway', load: echo },
    { name: 'raw-uws', server: 'raw-uws', load: echo },
    { name: 'naive-piscina', server: 'naive-piscina', load: echo },
  ],
};
