/**
 * Predictor modules and ONNX files travel to nodes through a JetStream object store bucket, so a
 * node needs no shared file system. Objects are named by the sha256 of their bytes: the gateway
 * uploads a file once however many replicas use it, and a node keeps a local cache keyed the same
 * way, fetching each version once and re-using it across placements and restarts.
 *
 * Files stream in both directions (an ONNX model may be gigabytes). A predictor travels as its
 * module graph (bundles.ts): each file is an object here, plus a small manifest that names them.
 *
 * Checked against nats-server 2.9.10 (Debian's): the object store of @nats-io/obj v3 works there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '@nats-io/obj';
import { openObjectStore } from './buckets.js';
import { SwitchyardError } from '../protocol/errors.js';
import type { ClusterConnection } from './connection.js';
import type { ArtifactRef } from './subjects.js';

const SHA256 = /^[0-9a-f]{64}$/;

async function sha256OfFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest('hex'), size };
}

export class ArtifactStore {
  private readonly fetching = new Map<string, Promise<string>>();

  private constructor(private readonly store: ObjectStore) {}

  /** Opens the bucket, creating it the first time. */
  static async open(connection: ClusterConnection): Promise<ArtifactStore> {
    try {
      const store = await openObjectStore(connection.nc, connection.subjects.artifactsBucket, { storage: 'file', description: 'Switchyard predictor modules and models' });
      return new ArtifactStore(store);
    } catch (err) {
      throw new SwitchyardError('SY_INTERNAL', `cannot open the artifacts bucket (is JetStream enabled on the NATS server?): ${(err as Error).message}`);
    }
  }

  /** Uploads `file` unless the bucket already has these bytes; returns the reference nodes fetch by. */
  async put(file: string): Promise<ArtifactRef> {
    const { sha256, size } = await sha256OfFile(file);
    const ref: ArtifactRef = { sha256, name: path.basename(file), size };
    const existing = await this.store.info(sha256);
    if (existing && !existing.deleted && existing.size === size) return ref;
    const source = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
    const info = await this.store.put({ name: sha256, description: ref.name }, source);
    if (info.size !== size) {
      throw new SwitchyardError('SY_INTERNAL', `artifact ${file} changed while it was uploaded`);
    }
    return ref;
  }

  /** Stores `bytes` (small: a manifest) under their hash unless the bucket has them already. */
  async putBytes(bytes: Uint8Array, name: string): Promise<ArtifactRef> {
    const ref: ArtifactRef = { sha256: createHash('sha256').update(bytes).digest('hex'), name, size: bytes.byteLength };
    const existing = await this.store.info(ref.sha256);
    if (existing && !existing.deleted && existing.size === ref.size) return ref;
    await this.store.putBlob({ name: ref.sha256, description: name }, bytes);
    return ref;
  }

  /** The bytes of a small artifact, verified against its hash. */
  async read(ref: ArtifactRef): Promise<Uint8Array> {
    const bytes = SHA256.test(ref.sha256) ? await this.store.getBlob(ref.sha256) : null;
    if (!bytes) throw new SwitchyardError('SY_NO_REPLICA', `artifact ${ref.name} (${String(ref.sha256).slice(0, 12)}) is not in the artifacts bucket`);
    if (createHash('sha256').update(bytes).digest('hex') !== ref.sha256) {
      throw new SwitchyardError('SY_NO_REPLICA', `artifact ${ref.name} does not match its content hash`);
    }
    return bytes;
  }

  /**
   * The local path of `ref` under `cacheDir` (`<sha256>/<name>`), fetched and verified the first
   * time. Concurrent calls for the same artifact share one download.
   */
  fetch(ref: ArtifactRef, cacheDir: string): Promise<string> {
    if (!SHA256.test(ref.sha256) || path.basename(ref.name) !== ref.name || ref.name.startsWith('.')) {
      return Promise.reject(new SwitchyardError('SY_BAD_REQUEST', `not an artifact reference: ${JSON.stringify(ref)}`));
    }
    const target = path.join(path.resolve(cacheDir), ref.sha256, ref.name);
    let pending = this.fetching.get(target);
    if (!pending) {
      pending = this.download(ref, target).finally(() => this.fetching.delete(target));
      this.fetching.set(target, pending);
    }
    return pending;
  }

  private async download(ref: ArtifactRef, target: string): Promise<string> {
    // Only verified bytes are ever renamed into place, so a file of the right size is the artifact.
    const cached = await stat(target).catch(() => undefined);
    if (cached?.isFile() && cached.size === ref.size) return target;
    const result = await this.store.get(ref.sha256);
    if (!result) throw new SwitchyardError('SY_NO_REPLICA', `artifact ${ref.name} (${ref.sha256.slice(0, 12)}) is not in the artifacts bucket`);
    await mkdir(path.dirname(target), { recursive: true });
    const partial = `${target}.${randomBytes(6).toString('hex')}.partial`;
    const hash = createHash('sha256');
    try {
      const body = Readable.fromWeb(result.data as import('node:stream/web').ReadableStream<Uint8Array>);
      body.on('data', (chunk: Buffer) => hash.update(chunk));
      await pipeline(body, createWriteStream(partial));
      const failed = await result.error;
      if (failed) throw failed;
      const digest = hash.digest('hex');
      if (digest !== ref.sha256) throw new Error(`content hash ${digest} does not match`);
      await rename(partial, target);
      return target;
    } catch (err) {
      await rm(partial, { force: true });
      if (err instanceof SwitchyardError) throw err;
      throw new SwitchyardError('SY_NO_REPLICA', `cannot fetch artifact ${ref.name}: ${(err as Error).message}`);
    }
  }
}
