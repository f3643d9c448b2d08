/**
 * Creates local replicas: worker threads on this machine's devices. Where each goes is the
 * placer's decision (device preference, then room); this class only knows the local pools, which
 * devices this machine really has, and how many replica threads each may hold.
 *
 * A device an endpoint lists but this machine lacks is skipped, and so is a GPU whose onnxruntime
 * provider does not load for an ONNX endpoint: `devices: [cuda:0, cpu]` on a machine whose CUDA
 * provider is missing runs on the CPU, as the preference list says, instead of failing every start
 * on cuda:0.
 */
import os from 'node:os';
import type { DeviceInfo } from '../../native/devices.js';
import type { EndpointConfig } from '../config/schema.js';
import { placeReplicas, type PlacementCandidate } from '../autoscaler/placer.js';
import { defaultOutputDir } from '../../workers/pool/output-folder.js';
import { ThreadReplicaLink, type ReplicaSpec } from '../../workers/pool/thread-link.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { ReplicaFactory } from './endpoint.js';

/** The output folder an endpoint's local replicas write files into: `output_dir`, else a memory-backed default (workers/pool/output-folder.ts). */
export function outputDirOf(endpoint: string, config: Pick<EndpointConfig, 'output_dir'>): string {
  return config.output_dir ?? defaultOutputDir(endpoint);
}

/** What a replica of this endpoint loads, wherever it runs. */
export function replicaSpecOf(endpoint: string, config: EndpointConfig): ReplicaSpec {
  return {
    predictorPath: config.predictor,
    modelPath: config.model,
    outputDir: outputDirOf(endpoint, config),
    settings: config.settings,
    produces: config.produces,
    keepFiles: config.keep_files,
    maxResponseBytes: config.max_response_bytes,
  };
}

/**
 * Replica threads a local device may hold across all endpoints. CPU replicas mostly wait on I/O
 * or share cores through onnxruntime's own threads, so the bound is generous; a GPU holds a few
 * model copies at most.
 */
export function localDeviceLimit(device: string): number {
  if (device === 'cpu') return Math.max(8, 8 * os.availableParallelism());
  return 8;
}

/** Whether a replica of this endpoint can run on a device: an ONNX endpoint needs onnxruntime's provider for it. */
export function deviceCanHost(config: Pick<EndpointConfig, 'model'>, device: DeviceInfo): boolean {
  return config.model === undefined || device.onnx !== false;
}

/** The devices of this machine an endpoint may use, in the endpoint's order of preference. */
export function localDevicesFor(config: Pick<EndpointConfig, 'model' | 'devices'>, devices: readonly DeviceInfo[]): string[] {
  return config.devices.filter((id) => devices.some((d) => d.id === id && deviceCanHost(config, d)));
}

/** Why no replica of this endpoint can run on this machine, or undefined when one can. */
export function localPlacementProblem(config: Pick<EndpointConfig, 'model' | 'devices'>, devices: readonly DeviceInfo[]): string | undefined {
  if (localDevicesFor(config, devices).length > 0) return undefined;
  const reasons = config.devices.map((id) => {
    const device = devices.find((d) => d.id === id);
    if (!device) return `${id}: not on this machine`;
    return `${id}: onnxruntime's ${device.kind} execution provider does not load here`;
  });
  return `no device listed can run this endpoint here (${reasons.join('; ')}; this machine has ${devices.map((d) => d.id).join(', ')})`;
}

export class LocalReplicaFactory implements ReplicaFactory {
  private seq = 0;
  private readonly used = new Map<string, number>();

  constructor(
    private readonly region: string,
    /** This machine's devices (native/devices.ts discoverDevices). */
    private readonly devices: readonly DeviceInfo[],
  ) {}

  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[] {
    const candidates: PlacementCandidate[] = localDevicesFor(config, this.devices).map((device) => ({
      node: 'local',
      region: this.region,
      device,
      free: localDeviceLimit(device) - (this.used.get(device) ?? 0),
    }));
    return placeReplicas({ count, devicePreference: config.devices }, candidates).map(({ device }) => {
      this.used.set(device, (this.used.get(device) ?? 0) + 1);
      return new ThreadReplicaLink(
        { replicaId: `${endpoint}/${device}/${++this.seq}`, endpoint, device, node: 'local', region: this.region },
        replicaSpecOf(endpoint, config),
      );
    });
  }

  released(link: ReplicaLink): void {
    const n = this.used.get(link.device) ?? 0;
    if (n > 0) this.used.set(link.device, n - 1);
  }
}
