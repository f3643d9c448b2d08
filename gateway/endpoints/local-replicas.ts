/**
 * Creates local replicas: worker threads on this machine's devices, in the endpoint's order of
 * device preference, within each device's replica limit.
 */
import os from 'node:os';
import path from 'node:path';
import type { EndpointConfig } from '../config/schema.js';
import { ThreadReplicaLink } from '../../workers/pool/thread-link.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { ReplicaFactory } from './endpoint.js';

export function defaultOutputDir(endpoint: string): string {
  return path.join(os.tmpdir(), 'switchyard', `${endpoint}-${process.pid}`);
}

export class LocalReplicaFactory implements ReplicaFactory {
  private seq = 0;

  constructor(private readonly region: string) {}

  create(endpoint: string, config: EndpointConfig, count: number): ReplicaLink[] {
    const links: ReplicaLink[] = [];
    for (let i = 0; i < count; i++) {
      const device = config.devices[0]!;
      links.push(
        new ThreadReplicaLink(
          { replicaId: `${endpoint}/${device}/${++this.seq}`, endpoint, device, node: 'local', region: this.region },
          {
            predictorPath: config.predictor,
            modelPath: config.model,
            outputDir: config.output_dir ?? defaultOutputDir(endpoint),
            settings: config.settings,
            produces: config.produces,
            keepFiles: config.keep_files,
          },
        ),
      );
    }
    return links;
  }
}
