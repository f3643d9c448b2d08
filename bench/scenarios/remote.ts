/**
 * The remote path against the local one, in the same run: the demo's echo endpoint served by a
 * replica in this gateway's process, and the same endpoint served by a replica on a node agent,
 * reached through nats-server (one NATS message per request batch each way). The ratio is remote
 * over local throughput; the p50 and p99 columns give the latency the remote hop adds. Everything
 * shares one machine, so the node agent and nats-server compete with the gateway and the load
 * generator for the same cores: on a small machine this is a floor, not what separate machines see.
 */
import type { HttpPlan, Scenario } from './index.js';
import { isEchoOfHello } from './echo.js';

const echo: HttpPlan = { kind: 'http', path: '/inference/echo', body: '{"text":"hello"}', verifyBody: isEchoOfHello };

export const remoteScenario: Scenario = {
  name: 'remote',
  description: 'POST /inference/echo {"text":"hello"} on a local replica vs a replica on a node agent through NATS',
  baseline: 'local',
  targets: [
    { name: 'local', server: 'gateway', load: echo },
    { name: 'remote', server: 'gateway-remote', load: echo },
  ],
};
