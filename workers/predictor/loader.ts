/**
 * Loads a predictor: a user's module (TypeScript through tsx, or JavaScript) whose default export
 * is a class or an object, or the built-in ONNX predictor for `model:` endpoints. Runs inside the
 * replica's worker thread.
 */
import { pathToFileURL } from 'node:url';
import { SwitchyardError } from '../protocol/errors.js';
import type { Predictor } from './api.js';

export interface PredictorSource {
  predictorPath?: string | undefined;
  modelPath?: string | undefined;
}

const TS_EXTENSIONS = /\.(ts|mts|cts|tsx)$/;

async function importModule(file: string): Promise<Record<string, unknown>> {
  if (TS_EXTENSIONS.test(file)) {
    // tsx compiles on import; loaded only when a user ships TypeScript.
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

function instantiate(exported: unknown, where: string): Predictor {
  let candidate = exported;
  if (typeof candidate === 'function') {
    candidate = new (candidate as new () => unknown)();
  }
  if (!candidate || typeof candidate !== 'object') {
    throw new SwitchyardError('SY_PREDICTOR_ERROR', `${where}: the default export must be a predictor class or object`);
  }
  const p = candidate as Partial<Predictor>;
  if (typeof p.predict !== 'function' && typeof p.predictStream !== 'function') {
    throw new SwitchyardError('SY_PREDICTOR_ERROR', `${where}: the predictor has neither predict() nor predictStream()`);
  }
  if (p.resumable !== undefined && p.resumable !== 'deterministic' && p.resumable !== 'checkpoint') {
    throw new SwitchyardError('SY_PREDICTOR_ERROR', `${where}: resumable must be 'deterministic' or 'checkpoint', not ${JSON.stringify(p.resumable)}`);
  }
  if (typeof p.predict !== 'function') {
    p.predict = () => {
      throw new SwitchyardError('SY_BAD_REQUEST', 'this endpoint only streams: send "stream": true');
    };
  }
  return p as Predictor;
}

export async function loadPredictor(source: PredictorSource): Promise<Predictor> {
  if (source.predictorPath) {
    let mod: Record<string, unknown>;
    try {
      mod = await importModule(source.predictorPath);
    } catch (err) {
      throw new SwitchyardError('SY_PREDICTOR_ERROR', `cannot load predictor ${source.predictorPath}: ${(err as Error).message}`);
    }
    // tsx may wrap a CommonJS-shaped default in another default.
    let exported: unknown = mod.default ?? mod;
    const inner = exported as { default?: unknown; predict?: unknown } | null;
    if (inner && typeof inner === 'object' && inner.default !== undefined && typeof inner.predict !== 'function') {
      exported = inner.default;
    }
    return instantiate(exported, source.predictorPath);
  }
  if (source.modelPath) {
    // Lazy: only replicas of ONNX endpoints load onnxruntime.
    const onnx = (await import(new URL('./onnx-predictor.js', import.meta.url).href)) as { default: new () => Predictor };
    return instantiate(onnx.default, 'built-in ONNX predictor');
  }
  throw new SwitchyardError('SY_PREDICTOR_ERROR', 'an endpoint needs a predictor module or an ONNX model');
}
