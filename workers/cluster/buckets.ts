/**
 * JetStream buckets that survive the loss of a NATS server: created with three replicas where
 * the servers form a JetStream cluster, with one on a single server (which refuses more). A
 * bucket that already exists is opened as it is.
 */
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { Objm, type ObjectStore, type ObjectStoreOptions } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';

const REPLICAS = 3;

export async function openKv(nc: NatsConnection, name: string, opts: Partial<KvOptions>): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(name, { ...opts, replicas: REPLICAS });
  } catch {
    return kvm.create(name, opts);
  }
}

export async function openObjectStore(nc: NatsConnection, name: string, opts: Partial<ObjectStoreOptions>): Promise<ObjectStore> {
  const objm = new Objm(nc);
  try {
    return await objm.create(name, { ...opts, replicas: REPLICAS });
  } catch {
    return objm.create(name, opts);
  }
}
