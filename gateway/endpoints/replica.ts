/**
 * The gateway's view of one replica: its link, lifecycle state, concurrency tokens and measured
 * latency. Requests for it collect during an event-loop turn and leave as one batch, and so does
 * the stream credit its clients returned in the turn (one `credits` message for all its streams).
 *
 * A request cancelled at its deadline keeps its token until the replica confirms the cancel
 * (`overdue`): until then the replica may still be busy with it, so it takes no new work, and
 * one that never confirms is wedged.
 */
import type { RequestEnvelope } from '../../workers/protocol/envelopes.js';
import { creditReturned } from '../../workers/protocol/credit.js';
import { TurnBatcher } from '../../workers/protocol/turn-batcher.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import type { RoutableReplica } from '../routing/pick-replica.js';
import type { Call } from './call.js';

/** `wedged`: it did not stop a request past its deadline; it is being terminated and replaced. */
export type ReplicaState = 'starting' | 'ready' | 'draining' | 'wedged' | 'stopped' | 'failed';

const LATENCY_ALPHA = 0.1;

/**
 * Replicas with requests in flight, over the whole gateway. A request alone in the gateway says so
 * to its link (ReplicaLink.send), so a local thread's answer can be polled for instead of woken
 * for: a poll holds the event loop, which only a lone request can afford.
 */
let busyReplicas = 0;

/** Replicas given requests or owed credit this turn; each sends them as one batch in the next. */
const batches = new TurnBatcher<Replica>((replicas) => {
  for (const replica of replicas) replica.flush();
});

export class Replica implements RoutableReplica {
  state: ReplicaState = 'starting';
  readonly calls = new Map<number, Call>();
  served = 0;
  latencyMs = 1;
  /** Its node missed heartbeats: route around it until it recovers. */
  suspect = false;
  /** A node agent's replica while the gateway's NATS connection is down: nothing reaches it. */
  unreachable = false;
  /** Requests cancelled at their deadline whose cancel the replica has not confirmed: id → when it was sent (monotonic ms). */
  readonly overdue = new Map<number, number>();
  private pending: RequestEnvelope[] = [];
  /** Streams whose clients took chunks this turn: their credit leaves with the turn's batch. */
  private credited = new Set<Call>();
  private scheduled = false;

  constructor(
    readonly link: ReplicaLink,
    readonly capacity: number,
    /** Epoch ms. */
    readonly startedAt: number,
  ) {}

  get id(): string {
    return this.link.replicaId;
  }

  get region(): string {
    return this.link.region;
  }

  /** It runs in a node agent, reached through NATS (local replicas are on node `local`). */
  get remote(): boolean {
    return this.link.node !== 'local';
  }

  /**
   * Requests it is working on: what routing weighs against `capacity`. A stream parked because its
   * client stopped reading (all its credit spent) waits for the client, not for this replica, so
   * it holds no slot here: a few paused readers cannot starve every other client of the endpoint.
   * `calls.size` counts everything it holds.
   */
  get inFlight(): number {
    return this.calls.size - this.parked.size + this.overdue.size;
  }

  /** Streams waiting for their client to read. */
  private readonly parked = new Set<Call>();

  /** A stream spent its credit: it waits for its client and frees its slot meanwhile. */
  park(call: Call): void {
    if (this.calls.get(call.id) === call) this.parked.add(call);
  }

  /** The client of a stream on this replica took chunks: their credit (`call.acked`) goes back with this turn's batch. */
  owesCredit(call: Call): void {
    this.credited.add(call);
    this.schedule();
  }

  /** Streams waiting for their client to read. */
  get parkedCount(): number {
    return this.parked.size;
  }

  isParked(call: Call): boolean {
    return this.parked.has(call);
  }

  get routable(): boolean {
    return this.state === 'ready' && !this.suspect && !this.unreachable && this.overdue.size === 0;
  }

  /** Since when (monotonic ms) the oldest unconfirmed cancel has waited; undefined when none. */
  get overdueSince(): number | undefined {
    let oldest: number | undefined;
    for (const at of this.overdue.values()) if (oldest === undefined || at < oldest) oldest = at;
    return oldest;
  }

  /** Takes a token and queues the request for this turn's batch. */
  assign(call: Call, now: number): void {
    call.replica = this;
    call.state = 'running';
    call.dispatchedAt = now;
    call.attempts++;
    this.calls.set(call.id, call);
    if (this.calls.size === 1) busyReplicas++;
    this.pending.push(call.env);
    if (this.pending.length > 1) return;
    // Alone on an idle replica, it leaves now: waiting for the next turn only adds latency. On a
    // busy replica it opens this turn's batch, which leaves in the next turn.
    if (this.calls.size === 1) this.flush(busyReplicas === 1);
    else this.schedule();
  }

  /** The batch of this turn leaves in the next. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    batches.push(this);
  }

  /** Gives the token back and learns from the request's service time. */
  release(call: Call, now: number): void {
    this.parked.delete(call);
    if (!this.calls.delete(call.id)) return;
    if (this.calls.size === 0) busyReplicas--;
    call.replica = undefined;
    this.served++;
    const sample = Math.max(0.01, now - call.dispatchedAt);
    this.latencyMs += LATENCY_ALPHA * (sample - this.latencyMs);
  }

  /** Takes back a request not yet sent this turn; true when it was still here (then no cancel is needed). */
  withdraw(call: Call): boolean {
    const i = this.pending.indexOf(call.env);
    if (i < 0) return false;
    this.pending.splice(i, 1);
    return true;
  }

  /** `lone`: see ReplicaLink.send. */
  flush(lone = false): void {
    this.scheduled = false;
    if (this.pending.length > 0) {
      const reqs = this.pending;
      this.pending = [];
      this.link.send(reqs, lone);
    }
    if (this.credited.size > 0) this.returnCredit();
  }

  /** One message for the credit of every stream whose client took chunks; each of them works again. */
  private returnCredit(): void {
    const ids: number[] = [];
    const ns: number[] = [];
    for (const call of this.credited) {
      // A stream that finished, moved to a sibling or was cancelled meanwhile owes nothing here.
      if (call.replica !== this || call.state !== 'streaming') continue;
      const n = creditReturned(call);
      if (n === 0) continue;
      ids.push(call.id);
      ns.push(n);
      this.parked.delete(call);
    }
    this.credited.clear();
    if (ids.length === 1) this.link.control({ t: 'credit', id: ids[0]!, n: ns[0]! });
    else if (ids.length > 1) this.link.control({ t: 'credits', ids, ns });
  }
}
