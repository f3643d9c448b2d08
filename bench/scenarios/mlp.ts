/**
 * A small ONNX model through the gateway, against the gateway's echo: the ratio is what running
 * onnxruntime (tensor decode, session.run, encode) costs on top of the request path itself.
 */
import type { Scenario } from './index.js';
import { isEchoOfHello } from './echo.js';

function isJsonObject(body: string): boolean {
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === 'object' && value !== null && !('error' in value);
  } catch {
    return false;
  }
}

export const mlpScenario: Scenario = {
  name: 'mlp',
  description: 'POST /inference/mlp with a [1,4] float tensor, against the gateway echo',
  baseline: 'gateway echo',
  targets: [
    {
      name: 'gateway mlp',
      server: 'gateway',
      load: { kind: 'http', path: '/inference/mlp', body: '{"x":{"dims":[1,4],"data":[0.1,0.2,0.3,0.4]}}', verifyBody: isJsonObject },
    },
    {
      name: 'gateway echo',
      server: 'gateway',
      load: { kind: 'http', path: '/inference/echo', body: '{"text":"hello"}', verifyBody: isEchoOfHello },
    },
  ],
};
