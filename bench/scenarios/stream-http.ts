/**
 * A long stream over chunked HTTP: 100 answer lines per request with no pause between them, from
 * the gateway's demo `stream` endpoint (a generator in a worker thread, credit-based flow, each
 * chunk written as it arrives) against raw uWS writing the same lines from a generator on its own
 * event loop, and against FastAPI's `StreamingResponse` over an async generator on uvicorn (how
 * TensorOpera Deploy streams). Every request carries STREAM_CHUNKS chunks, so the ratio of requests
 * per second is the ratio of chunks per second (chunks/s = req/s × STREAM_CHUNKS).
 */
import type { HttpPlan, Scenario } from './index.js';

export const STREAM_CHUNKS = 100;
export const STREAM_INPUT = { text: 'bench', chunks: STREAM_CHUNKS, interval_ms: 0 };

const line = (i: number) => `Answer for ${STREAM_INPUT.text} is: ${i}\n\n`;

export function isWholeAnswer(body: string): boolean {
  return body.length === Array.from({ length: STREAM_CHUNKS }, (_, i) => line(i + 1)).join('').length && body.startsWith(line(1)) && body.endsWith(line(STREAM_CHUNKS));
}

const plan: HttpPlan = {
  kind: 'http',
  path: '/inference/stream',
  body: JSON.stringify({ ...STREAM_INPUT, stream: true }),
  verifyBody: isWholeAnswer,
  stream: true,
};

export const streamHttpScenario: Scenario = {
  name: 'stream-http',
  description: `POST /inference/stream, "stream": true: ${STREAM_CHUNKS} chunks per chunked response (chunks/s = req/s × ${STREAM_CHUNKS})`,
  baseline: 'raw-uws-stream',
  targets: [
    { name: 'gateway', server: 'gateway', load: plan },
    { name: 'raw-uws-stream', server: 'raw-uws-stream', load: plan },
    { name: 'fastapi-streaming', server: 'fastapi-default', load: plan },
  ],
};
