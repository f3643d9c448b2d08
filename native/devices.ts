/**
 * What a machine can run replicas on: the CPU always; NVIDIA GPUs when `nvidia-smi` answers (absent
 * or hung tools mean no GPU, after a short timeout, never an error); Apple CoreML on Apple silicon.
 * `selectDevices` turns `--devices auto|cpu|cuda:0,...` into the list a node offers, refusing
 * devices the machine does not have with a message that says which ones it does.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { listExecutionProviders } from './onnx.js';

export type DeviceKind = 'cpu' | 'cuda' | 'coreml';

/** The device grammar: what `devices:` in config and `--devices` on a node accept. */
export const DEVICE_PATTERN = /^(cpu|cuda:\d+|coreml)$/;

/** A `--devices` choice this machine cannot honour; the CLI exits 2 on its code, as for any config error. */
export class DeviceSelectionError extends Error {
  readonly code = 'SY_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'DeviceSelectionError';
  }
}

export interface DeviceInfo {
  /** `cpu`, `cuda:N` or `coreml`: the name endpoints use in `devices:`. */
  id: string;
  kind: DeviceKind;
  /** Human name: CPU model or GPU product. */
  name: string;
  /** Device memory (system memory for the CPU and for Apple's unified memory). */
  memoryBytes: number;
  /** Logical cores, for the CPU. */
  cores?: number;
  /** Whether onnxruntime's execution provider for this device really loads here (ONNX endpoints need it). */
  onnx?: boolean;
}

export interface DiscoverOptions {
  /** The `nvidia-smi` executable (default: found on PATH). */
  nvidiaSmi?: string;
  /** How long `nvidia-smi` may take before the machine counts as GPU-less. */
  probeTimeoutMs?: number;
  /** Execution providers that load (default: onnxruntime is asked, once per process). */
  onnxProviders?: () => Promise<string[]>;
  platform?: NodeJS.Platform;
  arch?: string;
}

const DEFAULT_PROBE_TIMEOUT_MS = 3_000;
const MIB = 1024 * 1024;

export function cpuDevice(): DeviceInfo {
  const cpus = os.cpus();
  return {
    id: 'cpu',
    kind: 'cpu',
    name: cpus[0]?.model.trim() || os.arch(),
    memoryBytes: os.totalmem(),
    cores: Math.max(1, os.availableParallelism?.() ?? cpus.length),
  };
}

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader` output. */
export function parseNvidiaSmi(csv: string): DeviceInfo[] {
  const gpus: DeviceInfo[] = [];
  for (const line of csv.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const parts = line.split(',').map((part) => part.trim());
    if (parts.length < 3) continue;
    const index = Number(parts[0]);
    // The product name may itself hold commas; the index is first and the memory last.
    const memory = /^(\d+(?:\.\d+)?)\s*MiB$/i.exec(parts.at(-1) ?? '');
    if (!Number.isInteger(index) || index < 0 || !memory) continue;
    gpus.push({
      id: `cuda:${index}`,
      kind: 'cuda',
      name: parts.slice(1, -1).join(', '),
      memoryBytes: Math.round(Number(memory[1]) * MIB),
    });
  }
  return gpus;
}

function runNvidiaSmi(executable: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      executable,
      ['--query-gpu=index,name,memory.total', '--format=csv,noheader'],
      { timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true, maxBuffer: 1024 * 1024 },
      // Missing binary, no driver, a hung probe: all mean "no NVIDIA GPU here".
      (err, stdout) => resolve(err ? undefined : stdout),
    );
  });
}

export async function discoverDevices(options: DiscoverOptions = {}): Promise<DeviceInfo[]> {
  const cpu = cpuDevice();
  const devices = [cpu];
  const out = await runNvidiaSmi(options.nvidiaSmi ?? 'nvidia-smi', options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS);
  if (out !== undefined) devices.push(...parseNvidiaSmi(out));
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  if (platform === 'darwin' && arch === 'arm64') {
    devices.push({ id: 'coreml', kind: 'coreml', name: cpu.name, memoryBytes: os.totalmem() });
  }
  // A GPU whose CUDA provider does not load can still serve predictor modules, not ONNX models.
  const providers = await (options.onnxProviders ?? listExecutionProviders)().catch(() => [] as string[]);
  for (const device of devices) device.onnx = providers.includes(device.kind);
  return devices;
}

/**
 * The devices to offer for a `--devices` value: `auto` (everything found), or a comma list of
 * `cpu`, `cuda:N`, `coreml`, each of which must exist here. Order is kept; duplicates are errors.
 */
export function selectDevices(spec: string, available: readonly DeviceInfo[]): DeviceInfo[] {
  const value = spec.trim();
  if (value === '') throw new DeviceSelectionError('--devices must be "auto" or a comma list like "cpu,cuda:0"');
  if (value === 'auto') return [...available];
  const have = available.map((d) => d.id).join(', ');
  const chosen: DeviceInfo[] = [];
  for (const raw of value.split(',')) {
    const id = raw.trim();
    if (!DEVICE_PATTERN.test(id)) {
      throw new DeviceSelectionError(`--devices: "${id}" is not a device; use "auto" or a comma list of cpu, cuda:N, coreml`);
    }
    if (chosen.some((d) => d.id === id)) throw new DeviceSelectionError(`--devices: "${id}" is listed twice`);
    const device = available.find((d) => d.id === id);
    if (!device) throw new DeviceSelectionError(`--devices: this machine has no ${id} (it has: ${have})`);
    chosen.push(device);
  }
  return chosen;
}
