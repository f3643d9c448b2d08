/**
 * The embedded demo: what `npm start` serves with no config file and no services. Paths point at
 * the compiled examples next to this file (dist/examples/...).
 */
import { fileURLToPath } from 'node:url';
import type { Config } from './schema.js';
import { validateConfig } from './load.js';

const examples = (p: string) => fileURLToPath(new URL(`../../examples/${p}`, import.meta.url));
/** The ONNX model is written by `npm run build` into the source tree's examples/mlp/. */
const sourceExamples = (p: string) => fileURLToPath(new URL(`../../../examples/${p}`, import.meta.url));

export function demoConfig(overrides: { port?: number; host?: string } = {}): Readonly<Config> {
  return validateConfig({
    // Any origin may call the demo from a browser page.
    server: { cors: { allow_origins: ['*'] }, ...(overrides.port === undefined ? {} : { port: overrides.port }), ...(overrides.host === undefined ? {} : { host: overrides.host }) },
    endpoints: {
      echo: { predictor: examples('echo/predictor.js'), replicas: 1, max_concurrency: 256 },
      // A small model: one onnxruntime thread per replica beats threads fighting over the cores.
      mlp: { model: sourceExamples('mlp/model.onnx'), replicas: 1, max_concurrency: 64, settings: { intra_op_threads: 1 } },
      stream: { predictor: examples('stream/predictor.js'), replicas: 1, max_concurrency: 256, settings: { interval_ms: 200 } },
      // A toy text model on the OpenAI-compatible routes (model "parrot").
      parrot: { predictor: examples('parrot/predictor.js'), replicas: 1, max_concurrency: 256, settings: { interval_ms: 30 }, openai: { model: 'parrot' } },
      image: { predictor: examples('image/predictor.js'), replicas: 1, max_concurrency: 64, produces: ['image/png'] },
    },
  });
}
