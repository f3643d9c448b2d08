/**
 * File responses: a ~1 MB PNG (540×540 noise, which does not compress) per request with
 * `Accept: image/png`. The gateway's demo `image` endpoint answers with the PNG's bytes, which the
 * gateway serves as the file from memory (moved from the worker thread, never written to disk;
 * the drawing itself is remembered, so what is measured is the file answer: the hop back, the
 * head, the bytes into the socket with backpressure). Against:
 *
 * - raw uWS reading the file on every request (the baseline: what issue 15 measures against),
 * - raw uWS sending the bytes from memory (the ceiling of this stack),
 * - FastAPI's FileResponse on uvicorn, reading the same file on every request (the reference
 *   system's own mechanism).
 *
 * MB/s = req/s × FILE_BYTES.
 */
import type { HttpPlan, Scenario } from './index.js';

export const FILE_INPUT = { text: 'bench', width: 540, height: 540, pattern: 'noise' };
/** The size of the PNG that FILE_INPUT draws. */
export const FILE_BYTES = 1_010_985;

/** autocannon hands the body over as text: the PNG signature's "PNG" survives the decoding. */
function isPng(body: string): boolean {
  return body.slice(1, 4) === 'PNG' && body.includes('IEND');
}

const plan = (path: string): HttpPlan => ({
  kind: 'http',
  path,
  headers: { accept: 'image/png' },
  body: JSON.stringify(FILE_INPUT),
  verifyBody: isPng,
  largeBodies: true,
});

export const fileScenario: Scenario = {
  name: 'file',
  description: `POST /inference/image, Accept: image/png, a ${(FILE_BYTES / 1e6).toFixed(2)} MB PNG per response (MB/s = req/s × ${(FILE_BYTES / 1e6).toFixed(2)})`,
  baseline: 'raw-uws read per request',
  targets: [
    { name: 'gateway', server: 'gateway', load: plan('/inference/image') },
    { name: 'raw-uws read per request', server: 'raw-uws-stream', load: plan('/inference/image-disk') },
    { name: 'raw-uws from memory', server: 'raw-uws-stream', load: plan('/inference/image') },
    { name: 'fastapi-file', server: 'fastapi-file', load: plan('/inference/image') },
  ],
};
