/**
 * Creates local replicas: worker threads on this machine's devices. Where each goes is the
 * placer's decision (device preference, then room); this class only knows the local pools and
 * how many replica threads each may hold.
 */
import os from 'node:os';
import path from 'node:path';
import type { EndpointConfig } from '../config/schema.js';
import { placeReplicas, type PlacementCandidate } from '../autoscaler/placer.js';
import { ThreadReplicaLink, type ReplicaSpec } from '../../workers/pool/thread-link.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { ReplicaFactory } from './endpoint.js';

export function defaultOutputDir(endpoint: string): string {
  return path.join(os.tmpdir(), 'switchyard', `${endpoint}-${process.pid}`);
}

/** What a replica of this endpoint loads, wherever it runs. */
export function replicaSpecOf(endpoint: string, config: EndpointConfig): ReplicaSpec {
  return {
    predictorPath: config.predictor,
    modelPath: config.model,
    outputDir: config.output_dir ?? defaultOutputDir(endpoint),
    settings: config.settings,
    produces: config.produces,
    keepFiles: config.keep_files,
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

export class LocalReplicaFactory implements ReplicaFactory {
  private seq = 0;
  private readonly used = new Map<string, number>();

  constructor(private readonly region: string) {}

  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[] {
    const candidates: PlacementCandidate[] = config.devices.map((device) => ({
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
