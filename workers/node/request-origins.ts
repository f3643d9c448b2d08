/**
 * The requests a hosted replica is working on, by the id the replica knows them by. Federated
 * gateways share a replica and each numbers its requests on its own, so the node gives every
 * request an id of its own and maps frames back to the sender and its id. Lookups by sender are
 * a map of numbers per gateway: nothing is built per request to find one (a `gateway:id` string
 * key cost more than the rest of the bookkeeping together).
 */
export interface Origin {
  gateway: string;
  id: number;
}

export class RequestOrigins {
  private readonly byLocal = new Map<number, Origin>();
  /** gateway → its request id → the id here. Gateways are few and come back, so their maps stay. */
  private readonly byGateway = new Map<string, Map<number, number>>();
  private nextId = 0;

  get size(): number {
    return this.byLocal.size;
  }

  /** Gives the request `id` from `gateway` an id here and returns it. */
  admit(gateway: string, id: number): number {
    const local = ++this.nextId;
    this.byLocal.set(local, { gateway, id });
    let ids = this.byGateway.get(gateway);
    if (!ids) this.byGateway.set(gateway, (ids = new Map()));
    ids.set(id, local);
    return local;
  }

  /** The id here of request `id` from `gateway`, while it runs. */
  local(gateway: string, id: number): number | undefined {
    return this.byGateway.get(gateway)?.get(id);
  }

  /** Who sent the request with id `local` here, while it runs. */
  origin(local: number): Origin | undefined {
    return this.byLocal.get(local);
  }

  /** The request is over: forgets it and returns who sent it (undefined when it was not running). */
  finish(local: number): Origin | undefined {
    const origin = this.byLocal.get(local);
    if (!origin) return undefined;
    this.byLocal.delete(local);
    this.byGateway.get(origin.gateway)?.delete(origin.id);
    return origin;
  }
}
