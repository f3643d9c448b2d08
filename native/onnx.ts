/**
 * The one module that imports onnxruntime-node. It turns a device name (`cpu`, `cuda:N`,
 * `coreml`) into execution providers and says which providers this machine can really load.
 *
 * A session asked for `cuda:N` gets the CUDA provider alone: if it cannot load, session creation
 * fails with an error naming the device instead of quietly running on the CPU, because a replica
 * placed on a GPU that secretly computes on the CPU is a capacity lie the autoscaler cannot see.
 * (Nodes the CUDA provider has no kernel for still fall to onnxruntime's built-in CPU kernels;
 * that is per operator, not per device, and is how onnxruntime always works.)
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { InferenceSession, Tensor, listSupportedBackends } from 'onnxruntime-node';

export { InferenceSession, Tensor };

/** Providers Switchyard knows how to place replicas on, in device-name order. */
export const KNOWN_PROVIDERS = ['cpu', 'cuda', 'coreml'] as const;
export type ProviderName = (typeof KNOWN_PROVIDERS)[number];

export interface SessionTuning {
  /** Threads onnxruntime may use inside one operator (default: onnxruntime's choice, all cores). */
  intraOpThreads?: number;
}

type ProviderConfig = InferenceSession.ExecutionProviderConfig;

/** Parses `cpu`, `cuda`, `cuda:N` or `coreml` into the provider list for a session. */
export function executionProvidersFor(device: string): { provider: ProviderName; config: ProviderConfig[] } {
  if (device === 'cpu') return { provider: 'cpu', config: ['cpu'] };
  if (device === 'coreml') return { provider: 'coreml', config: ['coreml'] };
  const cuda = /^cuda(?::(\d+))?$/.exec(device);
  if (cuda) {
    const deviceId = cuda[1] === undefined ? 0 : Number(cuda[1]);
    return { provider: 'cuda', config: [{ name: 'cuda', deviceId }] };
  }
  throw new Error(`unknown device "${device}": expected "cpu", "cuda:N" or "coreml"`);
}

/** Loads a model (a file path or its bytes) on a device. Throws an error naming the device when its provider cannot load. */
export async function createSession(model: string | Uint8Array, device: string, tuning: SessionTuning = {}): Promise<InferenceSession> {
  const { provider, config } = executionProvidersFor(device);
  if (!compiledProviders().has(provider)) {
    throw new Error(`cannot run on ${device}: this onnxruntime-node build for ${process.platform}/${process.arch} has no ${provider} execution provider`);
  }
  const missing = missingProviderLibrary(provider);
  if (missing !== undefined) {
    throw new Error(
      `cannot run on ${device}: the ${provider} execution provider is not installed (${missing} is missing beside the onnxruntime-node binding; ` +
        'reinstall onnxruntime-node with network access, e.g. ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node)',
    );
  }
  const options: InferenceSession.SessionOptions = {
    executionProviders: config,
    ...(tuning.intraOpThreads === undefined ? {} : { intraOpNumThreads: tuning.intraOpThreads }),
  };
  try {
    return await openSession(model, options);
  } catch (err) {
    // A broken model fails on every device; only blame the device when its provider is what failed.
    if (provider === 'cpu' || (await listExecutionProviders()).includes(provider)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot run on ${device}: onnxruntime could not load the ${provider} execution provider (${message})`, { cause: err });
  }
}

function openSession(model: string | Uint8Array, options: InferenceSession.SessionOptions): Promise<InferenceSession> {
  return typeof model === 'string' ? InferenceSession.create(model, options) : InferenceSession.create(model, options);
}

let providersOnThisMachine: Promise<ProviderName[]> | undefined;

/**
 * The providers that really load here, found by creating a one-node session on each (cached for
 * the life of the process). CUDA is probed on device 0.
 */
export function listExecutionProviders(): Promise<ProviderName[]> {
  providersOnThisMachine ??= probeProviders();
  return providersOnThisMachine;
}

async function probeProviders(): Promise<ProviderName[]> {
  const model = await identityModel();
  const found: ProviderName[] = [];
  for (const provider of KNOWN_PROVIDERS) {
    if (!compiledProviders().has(provider)) continue;
    // onnxruntime prints an error to stderr when a provider library is absent; skipping the
    // attempt when the file is plainly missing keeps discovery quiet on CPU-only machines.
    if (missingProviderLibrary(provider) !== undefined) continue;
    try {
      const { config } = executionProvidersFor(provider === 'cuda' ? 'cuda:0' : provider);
      const session = await openSession(model, { executionProviders: config });
      await session.release();
      found.push(provider);
    } catch {
      // Not loadable here: simply not listed.
    }
  }
  return found;
}

let compiled: Set<string> | undefined;

/** Providers compiled into this onnxruntime-node binary (bundled or loaded from a side library). */
function compiledProviders(): Set<string> {
  compiled ??= new Set(listSupportedBackends().map((backend) => backend.name));
  return compiled;
}

/**
 * Providers that onnxruntime-node ships outside its main library (CUDA on Linux is downloaded at
 * install time) are shared libraries beside the binding; returns the missing file's name, if any.
 */
function missingProviderLibrary(provider: ProviderName): string | undefined {
  const backend = listSupportedBackends().find((b) => b.name === provider);
  if (backend === undefined || backend.bundled) return undefined;
  const file = process.platform === 'win32' ? `onnxruntime_providers_${provider}.dll` : `libonnxruntime_providers_${provider}.so`;
  return existsSync(path.join(bindingFolder(), file)) ? undefined : file;
}

function bindingFolder(): string {
  const require = createRequire(import.meta.url);
  const packageRoot = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(packageRoot, 'bin', 'napi-v6', process.platform, process.arch);
}

/** A one-node model (`y = Identity(x)`, float32 [1]) built in memory for probing providers. */
async function identityModel(): Promise<Uint8Array> {
  const { onnx } = (await import('onnx-proto')).default;
  const float1 = (name: string): import('onnx-proto').onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'switchyard',
    graph: { name: 'probe', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], input: [float1('x')], output: [float1('y')] },
  }).finish();
}
