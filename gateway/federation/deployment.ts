/**
 * The deployment stored in the cluster: what `switchyard deploy` (or a gateway started with
 * `--config --federate`) writes and what every federated gateway serves. One JetStream KV bucket
 * holds a key per endpoint (`endpoints.<name>`: its validated settings, and its predictor bundle
 * and model as artifact references, the bytes being in the artifacts object store) and one key
 * `deployment` naming the endpoints of the current deployment.
 *
 * Each endpoint carries a `version`: the hash of everything a replica loads (artifacts by content
 * hash, settings, devices). A deploy that changes it starts a rolling update of that endpoint; one
 * that changes nothing a replica loads leaves its replicas alone.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { openKv } from '../../workers/cluster/buckets.js';
import { ArtifactStore } from '../../workers/cluster/artifacts.js';
import { putBundle } from '../../workers/cluster/bundles.js';
import type { ClusterConnection } from '../../workers/cluster/connection.js';
import type { ArtifactRef } from '../../workers/cluster/subjects.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { Config, EndpointConfig } from '../config/schema.js';

export interface StoredEndpoint {
  name: string;
  /** The endpoint's settings as validated where it was deployed (paths are that machine's). */
  config: EndpointConfig;
  predictor?: ArtifactRef;
  model?: ArtifactRef;
  /** Hash of what a replica loads: a change means new replicas (a rolling update). */
  version: string;
}

export interface StoredDeployment {
  endpoints: string[];
  deployedAt: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}

/** The version of an endpoint: what its replicas load, by content. */
export function endpointVersion(config: EndpointConfig, predictor: ArtifactRef | undefined, model: ArtifactRef | undefined): string {
  const loaded = { predictor: predictor?.sha256, model: model?.sha256, settings: config.settings, devices: config.devices, produces: config.produces, keep_files: config.keep_files };
  return createHash('sha256').update(JSON.stringify(loaded)).digest('hex').slice(0, 16);
}

export class DeploymentStore {
  private constructor(
    private readonly kv: KV,
    private readonly connection: ClusterConnection,
  ) {}

  static async open(connection: ClusterConnection): Promise<DeploymentStore> {
    try {
      const kv = await openKv(connection.nc, connection.subjects.deploymentBucket, { history: 1, storage: 'file' });
      return new DeploymentStore(kv, connection);
    } catch (err) {
      throw new SwitchyardError('SY_INTERNAL', `cannot open the deployment bucket (is JetStream enabled on the NATS server?): ${(err as Error).message}`);
    }
  }

  /** Uploads every endpoint's artifacts and stores the deployment; returns what was stored. */
  async publish(config: Readonly<Config>): Promise<StoredEndpoint[]> {
    const artifacts = await ArtifactStore.open(this.connection);
    const stored: StoredEndpoint[] = [];
    for (const [name, endpoint] of Object.entries(config.endpoints)) {
      if (endpoint.placement === 'local') {
        throw new SwitchyardError('SY_BAD_REQUEST', `endpoints.${name}.placement: "local" cannot be served by a federation (every replica runs on a node agent)`);
      }
      const predictor = endpoint.predictor ? await putBundle(artifacts, endpoint.predictor) : undefined;
      const model = endpoint.model ? await artifacts.put(endpoint.model) : undefined;
      const entry: StoredEndpoint = {
        name,
        config: endpoint,
        ...(predictor ? { predictor } : {}),
        ...(model ? { model } : {}),
        version: endpointVersion(endpoint, predictor, model),
      };
      await this.kv.put(`endpoints.${name}`, encodeJson(entry));
      stored.push(entry);
    }
    const deployment: StoredDeployment = { endpoints: Object.keys(config.endpoints), deployedAt: new Date().toISOString() };
    await this.kv.put('deployment', encodeJson(deployment));
    // Endpoints left out are no longer deployed (their leaders stop their replicas); their entries go.
    for await (const key of await this.kv.keys('endpoints.*')) {
      if (!(key.slice('endpoints.'.length) in config.endpoints)) await this.kv.delete(key);
    }
    return stored;
  }

  /** The deployment and its endpoints, or undefined when nothing was deployed yet. */
  async load(): Promise<{ deployment: StoredDeployment; endpoints: StoredEndpoint[] } | undefined> {
    const entry = await this.kv.get('deployment');
    if (!entry || entry.operation !== 'PUT') return undefined;
    const deployment = decodeJson<StoredDeployment>(entry.value);
    const endpoints: StoredEndpoint[] = [];
    for (const name of deployment.endpoints) {
      const e = await this.kv.get(`endpoints.${name}`);
      if (e && e.operation === 'PUT') endpoints.push(decodeJson<StoredEndpoint>(e.value));
    }
    return { deployment, endpoints };
  }
}
