/**
 * File responses: a ~1 MB PNG (540×540 noise, which does not compress) per request with
 * `Accept: image/png`. The gateway's demo `image` endpoint writes the file in its worker (the
 * drawing itself is remembered, so the cost measured is the file path: write, check, open, read
 * into the socket with backpressure, delete) against raw uWS sending the same bytes from memory,
 * and raw uWS reading them from a file on every request. MB/s = req/s × FILE_BYTES.
 *
 * This is the measurement that decides whether an mmap addon could pay: it could only remove
 * what separates reading the file from having its bytes in memory.
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
  baseline: 'raw-uws from memory',
  targets: [
    { name: 'gateway', server: 'gateway', load: plan('/inference/image') },
    { name: 'raw-uws from memory', server: 'raw-uws-stream', load: plan('/inference/image') },
    { name: 'raw-uws read per request', server: 'raw-uws-stream', load: plan('/inference/image-disk') },
  ],
};
