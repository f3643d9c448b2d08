/**
 * Unary echo: the same small JSON POST against the gateway and every baseline. The ratio is to raw
 * uWS, the ceiling of this stack on this machine; the FastAPI rows are TensorOpera Deploy's
 * architecture.
 */
import type { HttpPlan, Scenario } from './index.js';

const BODY = '{"text":"hello"}';

export function isEchoOfHello(body: string): boolean {
  if (body === BODY) return true;
  try {
    return (JSON.parse(body) as { text?: unknown }).text === 'hello';
  } catch {
    return false;
  }
}

const echo: HttpPlan = { kind: 'http', path: '/inference/echo', body: BODY, verifyBody: isEchoOfHello };

export const echoScenario: Scenario = {
  name: 'echo',
  description: 'POST /inference/echo {"text":"hello"}, answered as JSON',
  baseline: 'raw-uws',
  targets: [
    { name: 'gateway', server: 'gateway', load: echo },
    { name: 'raw-uws', server: 'raw-uws', load: echo },
    { name: 'naive-piscina', server: 'naive-piscina', load: echo },
    { name: 'fastify-piscina', server: 'fastify-piscina', load: echo },
    { name: 'fastapi-default', server: 'fastapi-default', load: echo },
    { name: 'fastapi-uvloop', server: 'fastapi-uvloop', load: echo },
  ],
};
