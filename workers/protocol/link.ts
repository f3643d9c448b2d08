/**
 * The seam between the gateway and a replica, wherever the replica runs. A local replica is a
 * worker thread (workers/pool/thread-link.ts); a remote one lives in a node agent across NATS
 * (gateway/cluster). Routing, tracking and autoscaling only ever see this interface.
 */
import type { ControlMessage, ReplyFrame, RequestEnvelope } from './envelopes.js';

export interface ReplicaPlacement {
  /** Unique within the gateway, e.g. `echo/cpu/3` or `echo@node-a/cuda:0/1`. */
  readonly replicaId: string;
  readonly endpoint: string;
  readonly device: string;
  /** `local` for this process, else the node agent's name. */
  readonly node: string;
  readonly region: string;
}

export interface ReplicaLinkEvents {
  /** Frames for requests this link was sent, in order per request. */
  onFrames(frames: ReplyFrame[]): void;
  /** The replica is gone (thread died, node dead, link broken): every request on it is lost. */
  onLost(reason: string): void;
}

export interface StopOptions {
  /** Do not wait for the replica to finish or tear down: end it at once (a wedged thread is terminated). */
  now?: boolean;
}

export interface ReplicaLink extends ReplicaPlacement {
  /**
   * True when the replica answers every cancel with a `cancelled` frame promptly, so one that does
   * not is known to be stuck (a local thread). Remote links, whose confirmations ride a network,
   * leave it unset.
   */
  readonly confirmsCancels?: boolean;
  /** Loads and warms the model; resolves once the replica can take traffic. */
  start(events: ReplicaLinkEvents): Promise<void>;
  /**
   * Sends requests (a batch per event-loop turn). Never throws; failures come back as frames or onLost.
   * `lone`: the request is the only one in flight in the gateway; a link that can wait for a quick
   * answer outside its event loop (a local thread: workers/pool/polling.ts) may poll for it.
   */
  send(reqs: RequestEnvelope[], lone?: boolean): void;
  control(msg: ControlMessage): void;
  /** Ends the replica. Call after its in-flight requests finished (drain) or to give up on them. */
  stop(options?: StopOptions): Promise<void>;
}
