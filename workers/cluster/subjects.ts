/**
 * The cluster's wire contract: every NATS subject gateways and node agents use, and the message
 * each one carries. All subjects live under one prefix (default `switchyard`), so a deployment
 * can grant node credentials publish/subscribe on `<prefix>.>` and nothing else, and a node never
 * publishes outside it (request replies come back on `<prefix>._inbox.*`, see `inboxPrefix`).
 *
 *   <p>.announce                      node → gateways   NodeAnnounce (at start, on discover, after reconnect)
 *   <p>.heartbeat                     node → gateways   NodeHeartbeat, every heartbeat interval
 *   <p>.leave                         node → gateways   NodeLeave, the last word of a drained node
 *   <p>.discover                      gateway → nodes   (empty) every node re-announces
 *   <p>.fence                         gateway → nodes   Fence: a federation leader took over an endpoint
 *   <p>.signals                       gateway → leaders GatewaySignals, every gateway's load per endpoint
 *   <p>.node.<name>.place             gateway → node    PlaceRequest, request/reply PlaceReply
 *   <p>.node.<name>.stop              gateway → node    StopRequest, request/reply StopReply
 *   <p>.node.<name>.reincarnate       gateway → node    Reincarnate (the gateway buried that incarnation)
 *   <p>.node.<name>.r.<key>.req       gateway → node    RemoteRequestBatch for one replica
 *   <p>.node.<name>.r.<key>.ctl       gateway → node    ControlMessage (cancel, credit)
 *   <p>.gw.<gateway>.r.<key>.frames   node → gateway    RemoteReplyBatch, the gateway's inbox
 *   <p>.gw.<gateway>.r.<key>.lost     node → gateway    ReplicaLost
 *
 * Names, gateway ids and replica keys are single subject tokens (letters, digits, `_`, `-`), which
 * is checked wherever one arrives from the network, so no message can steer a publish elsewhere.
 */
import type { DeviceInfo } from '../../native/devices.js';
import type { WireError } from '../protocol/errors.js';
import type { ReplyFrame, RequestEnvelope } from '../protocol/envelopes.js';

export const DEFAULT_SUBJECT_PREFIX = 'switchyard';
/** How often a node heartbeats unless told otherwise; gateways expect this interval by default. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 250;

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const PREFIX = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;

export function isSubjectPrefix(value: unknown): value is string {
  return typeof value === 'string' && PREFIX.test(value);
}

export function isSubjectToken(value: unknown): value is string {
  return typeof value === 'string' && TOKEN.test(value);
}

export interface ClusterSubjects {
  readonly prefix: string;
  readonly announce: string;
  readonly heartbeat: string;
  readonly leave: string;
  readonly discover: string;
  readonly fence: string;
  readonly signals: string;
  /** Replies to requests land under this prefix (set as the connection's `inboxPrefix`). */
  readonly inboxPrefix: string;
  /** JetStream object store bucket holding predictor modules and ONNX files. */
  readonly artifactsBucket: string;
  /** Federation: JetStream KV buckets for the deployment, the shared replica sets, the gateways. */
  readonly deploymentBucket: string;
  readonly replicasBucket: string;
  readonly gatewaysBucket: string;
  place(node: string): string;
  stop(node: string): string;
  reincarnate(node: string): string;
  /** Everything a node's replicas receive: `replicaRequests` and `replicaControl` of all keys. */
  nodeReplicas(node: string): string;
  replicaRequests(node: string, key: string): string;
  replicaControl(node: string, key: string): string;
  /** Everything a gateway receives from replicas: `frames` and `lost` of all keys. */
  gatewayInbox(gateway: string): string;
  frames(gateway: string, key: string): string;
  lost(gateway: string, key: string): string;
}

export function clusterSubjects(prefix: string = DEFAULT_SUBJECT_PREFIX): ClusterSubjects {
  if (!isSubjectPrefix(prefix)) {
    throw new TypeError(`subject prefix must be dot-separated tokens of letters, digits, "_" or "-" (got ${JSON.stringify(prefix)})`);
  }
  const p = prefix;
  return Object.freeze({
    prefix: p,
    announce: `${p}.announce`,
    heartbeat: `${p}.heartbeat`,
    leave: `${p}.leave`,
    discover: `${p}.discover`,
    fence: `${p}.fence`,
    signals: `${p}.signals`,
    inboxPrefix: `${p}._inbox`,
    artifactsBucket: `${p.replace(/\./g, '_')}_artifacts`,
    deploymentBucket: `${p.replace(/\./g, '_')}_deployment`,
    replicasBucket: `${p.replace(/\./g, '_')}_replicas`,
    gatewaysBucket: `${p.replace(/\./g, '_')}_gateways`,
    place: (node: string) => `${p}.node.${node}.place`,
    stop: (node: string) => `${p}.node.${node}.stop`,
    reincarnate: (node: string) => `${p}.node.${node}.reincarnate`,
    nodeReplicas: (node: string) => `${p}.node.${node}.r.>`,
    replicaRequests: (node: string, key: string) => `${p}.node.${node}.r.${key}.req`,
    replicaControl: (node: string, key: string) => `${p}.node.${node}.r.${key}.ctl`,
    gatewayInbox: (gateway: string) => `${p}.gw.${gateway}.r.>`,
    frames: (gateway: string, key: string) => `${p}.gw.${gateway}.r.${key}.frames`,
    lost: (gateway: string, key: string) => `${p}.gw.${gateway}.r.${key}.lost`,
  });
}

/** The replica key and kind (`req`/`ctl`/`frames`/`lost`) of a subject under `nodeReplicas` or `gatewayInbox`. */
export function replicaSubjectParts(subject: string): { key: string; kind: string } | undefined {
  const tokens = subject.split('.');
  const kind = tokens.at(-1);
  const key = tokens.at(-2);
  if (tokens.at(-3) !== 'r' || key === undefined || kind === undefined || !isSubjectToken(key)) return undefined;
  return { key, kind };
}

// ---- messages ------------------------------------------------------------------------------

export interface NodeAnnounce {
  name: string;
  /** New every time the agent starts or is reincarnated; a node back from the dead is a new member. */
  incarnation: string;
  region: string;
  devices: DeviceInfo[];
  /** Replicas this node will host at once, over all devices. */
  maxReplicas: number;
  /** The interval the node heartbeats at, in ms. */
  heartbeatIntervalMs: number;
  /** How many times this incarnation has connected to NATS (1, then +1 per reconnect); see NodeHeartbeat. */
  connection?: number;
}

export interface NodeHeartbeat {
  name: string;
  incarnation: string;
  seq: number;
  /** In-flight requests per replica key. */
  inFlight: Record<string, number>;
  /** The node is shutting down: no new placements or requests, in-flight work finishes. */
  draining: boolean;
  /**
   * How many times this incarnation has connected to NATS. A rise means the node moved to another
   * server (its own died): messages to and from it in the meantime may be lost, so gateways retry
   * what they had in flight there.
   */
  connection?: number;
}

export interface NodeLeave {
  name: string;
  incarnation: string;
}

export interface Reincarnate {
  incarnation: string;
}

/** A content-addressed file in the artifacts bucket. */
export interface ArtifactRef {
  sha256: string;
  /** The original base name (the extension decides how a predictor module is loaded). */
  name: string;
  size: number;
}

export interface PlaceRequest {
  key: string;
  gateway: string;
  /** The node incarnation the gateway placed on; a different one refuses (the node restarted). */
  incarnation: string;
  replicaId: string;
  endpoint: string;
  device: string;
  region: string;
  /** The predictor's bundle manifest (bundles.ts): its whole module graph. */
  predictor?: ArtifactRef | undefined;
  model?: ArtifactRef | undefined;
  settings: Record<string, unknown>;
  produces: string[];
  keepFiles: boolean;
  /** Federation: the placing leader's token; the node refuses it once it saw a newer one. */
  fence?: Fence;
}

/** A federation leader's right to act for an endpoint: the KV revision at which it took the lease. */
export interface Fence {
  endpoint: string;
  token: number;
}

/** One gateway's load per endpoint (its tracker's cumulative counters), published every tick. */
export interface GatewaySignals {
  gateway: string;
  region: string;
  endpoints: Record<string, { integral: number; arrivals: number; inFlight: number; queued: number }>;
}

export type PlaceReply = { ok: true } | { ok: false; error: WireError };

export interface StopRequest {
  key: string;
  fence?: Fence;
}

export type StopReply = { ok: true } | { ok: false; error: WireError };

export interface RemoteRequestBatch {
  reqs: RequestEnvelope[];
  /** The sender's clock when sent: deadlines travel as epoch ms and are re-based on arrival (clock skew). */
  now: number;
  /** The gateway to tell when the replica is unknown. */
  gateway: string;
}

/**
 * A file a remote predictor wrote travels as its bytes; the gateway writes it into its own output
 * folder and hands routing an ordinary `file` frame, so files behave the same local or remote.
 */
export interface FileDataFrame {
  t: 'filedata';
  id: number;
  data: Uint8Array;
  contentType: string;
}

export type RemoteFrame = ReplyFrame | FileDataFrame;

export interface RemoteReplyBatch {
  frames: RemoteFrame[];
}

export interface ReplicaLost {
  reason: string;
}
