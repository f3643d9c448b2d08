/**
 * The gateway side of the cluster. `RemoteCluster` is this gateway's view of the nodes: it feeds
 * announces, heartbeats and leaves into the membership state machine, owns the gateway's inbox
 * (frames from every remote replica arrive on one wildcard subscription and are dispatched by the
 * replica key in the subject) and creates `RemoteReplicaLink`s. A `RemoteReplicaLink` is a
 * ReplicaLink whose replica lives in a node agent: one NATS message per request batch out, frame
 * batches back, files as bytes written into the gateway's output folder so they are served exactly
 * like local ones.
 *
 * A gateway that loses its own NATS connection learns nothing about the nodes meanwhile, so
 * membership pauses and restarts its clocks on reconnect instead of declaring every node dead.
 */
import { randomBytes } from 'node:crypto';
import { close as closeFd } from 'node:fs';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { nuid, RequestError, TimeoutError, type Msg, type Subscription } from '@nats-io/transport-node';
import { fromWire, SwitchyardError, toSwitchyardError } from '../../workers/protocol/errors.js';
import { pack, unpack, type ControlMessage, type ReplyFrame, type RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink, ReplicaLinkEvents, ReplicaPlacement } from '../../workers/protocol/link.js';
import { openOutputFile } from '../../workers/pool/output-files.js';
import type { ReplicaSpec } from '../../workers/pool/thread-link.js';
import { ArtifactStore } from '../../workers/cluster/artifacts.js';
import { putBundle } from '../../workers/cluster/bundles.js';
import { FragmentAssembler, type ClusterConnection } from '../../workers/cluster/connection.js';
import { Membership, type MembershipEvent, type MembershipTimings, type NodeMember } from './membership.js';
import {
  isSubjectToken,
  replicaSubjectParts,
  type FileDataFrame,
  type NodeAnnounce,
  type NodeHeartbeat,
  type NodeLeave,
  type PlaceReply,
  type PlaceRequest,
  type RemoteFrame,
  type RemoteReplyBatch,
  type ReplicaLost,
} from '../../workers/cluster/subjects.js';

export interface RemoteClusterOptions {
  timings?: Partial<MembershipTimings>;
  /** How long a node may take to fetch and load a replica before the placement fails. */
  placementTimeoutMs?: number;
  /** How long to wait for a node to confirm a replica stopped. */
  stopTimeoutMs?: number;
}

function isNodeMessage(m: unknown): m is { name: string; incarnation: string } {
  const n = m as { name?: unknown; incarnation?: unknown } | null;
  return !!n && isSubjectToken(n.name) && typeof n.incarnation === 'string';
}

/** At most one discover (or reincarnate per node) per this interval, however many triggers. */
const NUDGE_INTERVAL_MS = 1_000;
const NO_RESPONDERS_RETRY_MS = 100;

export class RemoteCluster {
  readonly gatewayId = nuid.next();
  readonly membership: Membership;
  readonly placementTimeoutMs: number;
  readonly stopTimeoutMs: number;
  private readonly links = new Map<string, RemoteReplicaLink>();
  private readonly listeners = new Set<(event: MembershipEvent) => void>();
  private readonly assembler = new FragmentAssembler();
  private readonly lastNudge = new Map<string, number>();
  private readonly subs: Subscription[] = [];
  private readonly ticker: NodeJS.Timeout;
  private readonly offStatus: () => void;
  private artifacts: Promise<ArtifactStore> | undefined;
  private closed = false;

  private constructor(
    readonly connection: ClusterConnection,
    options: RemoteClusterOptions,
  ) {
    this.membership = new Membership(options.timings);
    this.placementTimeoutMs = options.placementTimeoutMs ?? 120_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
    const s = connection.subjects;
    const nc = connection.nc;
    const on = (subject: string, handle: (msg: Msg) => void) =>
      this.subs.push(
        nc.subscribe(subject, {
          callback: (err, msg) => {
            try {
              if (!err) handle(msg);
            } catch {
              // Undecodable input from the network is dropped; it must not take the gateway down.
            }
          },
        }),
      );
    on(s.announce, (msg) => {
      const a = unpack<NodeAnnounce>(msg.data);
      if (isNodeMessage(a) && Array.isArray(a.devices) && typeof a.region === 'string') this.apply(this.membership.announce(a, Date.now()));
    });
    on(s.heartbeat, (msg) => {
      const h = unpack<NodeHeartbeat>(msg.data);
      if (isNodeMessage(h)) this.apply(this.membership.heartbeat({ ...h, inFlight: h.inFlight ?? {}, draining: h.draining === true }, Date.now()));
    });
    on(s.leave, (msg) => {
      const l = unpack<NodeLeave>(msg.data);
      if (isNodeMessage(l)) this.apply(this.membership.leave(l));
    });
    on(s.gatewayInbox(this.gatewayId), (msg) => this.onInbox(msg));
    const tickMs = Math.max(20, Math.floor(this.membership.timings.heartbeatIntervalMs / 2));
    let lastTick = Date.now();
    this.ticker = setInterval(() => {
      const now = Date.now();
      // This process itself stood still (paused, or its event loop blocked): like an outage of its
      // own, the silence says nothing about the nodes, so their clocks restart instead of expiring.
      if (now - lastTick > this.membership.timings.deadAfterMs / 2) this.membership.resume(now);
      lastTick = now;
      if (connection.state === 'connected') this.apply(this.membership.tick(now));
    }, tickMs);
    this.ticker.unref();
    this.offStatus = connection.onStatus((status) => {
      if (status.type === 'reconnected') {
        this.membership.resume(Date.now());
        this.nudge('discover', s.discover);
      } else if (status.type === 'closed') {
        void this.close();
      }
    });
  }

  /** Starts watching nodes and asks those already running to announce themselves. */
  static async open(connection: ClusterConnection, options: RemoteClusterOptions = {}): Promise<RemoteCluster> {
    const cluster = new RemoteCluster(connection, options);
    await connection.nc.flush();
    cluster.nudge('discover', connection.subjects.discover);
    return cluster;
  }

  nodes(): NodeMember[] {
    return this.membership.list();
  }

  node(name: string): NodeMember | undefined {
    return this.membership.get(name);
  }

  /** Membership transitions as they happen (joined, suspect, recovered, draining, dead, ...). */
  onMembership(listener: (event: MembershipEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A link to a replica to be placed on `placement.node` (started by `start()`). */
  createLink(placement: ReplicaPlacement, spec: ReplicaSpec): RemoteReplicaLink {
    return new RemoteReplicaLink(this, placement, spec);
  }

  /** A link to a replica another gateway placed (federation): `start` attaches, `stop` detaches. */
  attachLink(placement: ReplicaPlacement, spec: ReplicaSpec, attach: { key: string; incarnation: string }): RemoteReplicaLink {
    return new RemoteReplicaLink(this, placement, spec, attach);
  }

  /** The artifacts bucket, opened on first use. */
  artifactStore(): Promise<ArtifactStore> {
    this.artifacts ??= ArtifactStore.open(this.connection).catch((err: unknown) => {
      this.artifacts = undefined;
      throw err;
    });
    return this.artifacts;
  }

  /** Stops watching; every link still open is lost. Does not close the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    this.offStatus();
    for (const sub of this.subs) sub.unsubscribe();
    for (const link of [...this.links.values()]) link.lose('the cluster connection closed');
  }

  /** @internal */
  register(link: RemoteReplicaLink): void {
    if (this.closed) throw new SwitchyardError('SY_NO_REPLICA', 'the cluster connection is closed');
    this.links.set(link.key, link);
  }

  /** @internal */
  unregister(link: RemoteReplicaLink): void {
    if (this.links.get(link.key) === link) this.links.delete(link.key);
  }

  private onInbox(msg: Msg): void {
    const parts = replicaSubjectParts(msg.subject);
    const link = parts && this.links.get(parts.key);
    if (!link) return;
    if (parts.kind === 'frames') {
      const data = this.assembler.accept(msg);
      if (data) link.deliver(unpack<RemoteReplyBatch>(data).frames);
    } else if (parts.kind === 'lost') {
      link.lose(`node ${link.node} reported the replica lost: ${unpack<ReplicaLost>(msg.data).reason}`);
    }
  }

  private apply(events: MembershipEvent[]): void {
    for (const event of events) {
      if (event.type === 'dead') {
        for (const link of [...this.links.values()]) {
          if (link.node === event.name && link.incarnation === event.incarnation) link.lose(`node ${event.name} is dead (${event.reason})`);
        }
      } else if (event.type === 'unknown') {
        this.nudge('discover', this.connection.subjects.discover);
      } else if (event.type === 'stale') {
        this.nudge(`reincarnate:${event.name}`, this.connection.subjects.reincarnate(event.name), pack({ incarnation: event.incarnation }));
      }
      for (const listener of [...this.listeners]) listener(event);
    }
  }

  private nudge(what: string, subject: string, data: Uint8Array = new Uint8Array(0)): void {
    const now = Date.now();
    if (now - (this.lastNudge.get(what) ?? -Infinity) < NUDGE_INTERVAL_MS) return;
    this.lastNudge.set(what, now);
    this.connection.publish(subject, data);
  }
}

type LinkState = 'new' | 'starting' | 'running' | 'stopped' | 'lost';

export class RemoteReplicaLink implements ReplicaLink {
  readonly replicaId: string;
  readonly endpoint: string;
  readonly device: string;
  readonly node: string;
  readonly region: string;
  /** Names this replica in subjects; unique across gateways. */
  readonly key: string;
  private incarnationNow: string | undefined;
  private state: LinkState = 'new';
  private events: ReplicaLinkEvents | undefined;
  private abortStart: ((err: Error) => void) | undefined;

  constructor(
    private readonly cluster: RemoteCluster,
    placement: ReplicaPlacement,
    private readonly spec: ReplicaSpec,
    private readonly attach?: { key: string; incarnation: string },
  ) {
    this.key = attach?.key ?? nuid.next();
    this.replicaId = placement.replicaId;
    this.endpoint = placement.endpoint;
    this.device = placement.device;
    this.node = placement.node;
    this.region = placement.region;
  }

  /** The node incarnation hosting the replica (set by `start`). */
  get incarnation(): string | undefined {
    return this.incarnationNow;
  }

  async start(events: ReplicaLinkEvents): Promise<void> {
    if (this.state !== 'new') throw new SwitchyardError('SY_INTERNAL', `replica ${this.replicaId} was already started`);
    this.events = events;
    const member = this.cluster.node(this.node);
    if (!member || !this.cluster.membership.isRoutable(this.node)) {
      this.state = 'lost';
      throw new SwitchyardError('SY_NO_REPLICA', `node ${this.node} is not available for new replicas`);
    }
    this.incarnationNow = member.incarnation;
    if (this.attach) {
      if (member.incarnation !== this.attach.incarnation) {
        this.state = 'lost';
        throw new SwitchyardError('SY_NO_REPLICA', `node ${this.node} restarted since replica ${this.replicaId} was placed`);
      }
      this.cluster.register(this);
      this.state = 'running';
      return;
    }
    this.state = 'starting';
    const aborted = new Promise<never>((_, reject) => (this.abortStart = reject));
    aborted.catch(() => undefined);
    try {
      this.cluster.register(this);
      const request = this.placeRequest(member.incarnation);
      const placed = request.then((req) => {
        // Stopped or lost while artifacts uploaded: never ask the node for it.
        if (this.state !== 'starting') throw new SwitchyardError('SY_NO_REPLICA', `replica ${this.replicaId} was stopped while starting`);
        return this.place(req);
      });
      const reply = await Promise.race([placed, aborted]);
      if (!reply.ok) throw fromWire(reply.error);
      if ((this.state as LinkState) !== 'starting') throw new SwitchyardError('SY_NO_REPLICA', `replica ${this.replicaId} was stopped while starting`);
      this.state = 'running';
    } catch (err) {
      // Either way the node may still be loading it (a timeout, a stop meanwhile): make sure it does not linger there.
      void this.requestStop();
      if (this.state === 'starting') this.state = 'lost';
      this.cluster.unregister(this);
      throw toSwitchyardError(err, 'SY_NO_REPLICA');
    } finally {
      this.abortStart = undefined;
    }
  }

  send(reqs: RequestEnvelope[]): void {
    if (this.state !== 'running') return;
    const s = this.cluster.connection.subjects;
    const batch = pack({ reqs, now: Date.now(), gateway: this.cluster.gatewayId });
    if (!this.cluster.connection.publish(s.replicaRequests(this.node, this.key), batch)) this.lose('the cluster connection closed');
  }

  control(msg: ControlMessage): void {
    if (this.state !== 'running') return;
    // The sender rides along: a replica shared by federated gateways maps ids per gateway.
    this.cluster.connection.publish(this.cluster.connection.subjects.replicaControl(this.node, this.key), pack({ ...msg, gw: this.cluster.gatewayId }));
  }

  async stop(): Promise<void> {
    const was = this.state;
    if (was === 'stopped') return;
    this.state = 'stopped';
    this.cluster.unregister(this);
    this.abortStart?.(new SwitchyardError('SY_NO_REPLICA', `replica ${this.replicaId} was stopped while starting`));
    // An attached replica belongs to the federation's leader, which stops it.
    if (was === 'running' && !this.attach) await this.requestStop();
  }

  /** @internal Frames from the node. */
  deliver(frames: RemoteFrame[]): void {
    if (this.state !== 'running') return;
    let ready: ReplyFrame[] = frames as ReplyFrame[];
    if (frames.some((f) => f.t === 'filedata')) {
      ready = [];
      for (const frame of frames) {
        if (frame.t === 'filedata') void this.landFile(frame);
        else ready.push(frame);
      }
    }
    if (ready.length) this.events!.onFrames(ready);
  }

  /** @internal The replica is gone: node dead, replica died there, or the cluster closed. */
  lose(reason: string): void {
    if (this.state === 'starting') {
      this.abortStart?.(new SwitchyardError('SY_NO_REPLICA', reason));
      return;
    }
    if (this.state !== 'running') return;
    this.state = 'lost';
    this.cluster.unregister(this);
    this.events!.onLost(reason);
  }

  private async placeRequest(incarnation: string): Promise<PlaceRequest> {
    const store = this.spec.predictorPath || this.spec.modelPath ? await this.cluster.artifactStore() : undefined;
    return {
      key: this.key,
      gateway: this.cluster.gatewayId,
      incarnation,
      replicaId: this.replicaId,
      endpoint: this.endpoint,
      device: this.device,
      region: this.region,
      predictor: this.spec.predictorPath ? await putBundle(store!, this.spec.predictorPath) : undefined,
      model: this.spec.modelPath ? await store!.put(this.spec.modelPath) : undefined,
      settings: this.spec.settings,
      produces: this.spec.produces,
      keepFiles: this.spec.keepFiles,
    };
  }

  private async place(req: PlaceRequest): Promise<PlaceReply> {
    const nc = this.cluster.connection.nc;
    const deadline = Date.now() + this.cluster.placementTimeoutMs;
    for (;;) {
      try {
        const timeout = Math.max(1, deadline - Date.now());
        const msg = await nc.request(this.cluster.connection.subjects.place(this.node), pack(req), { timeout });
        return unpack<PlaceReply>(msg.data);
      } catch (err) {
        const noResponders = err instanceof RequestError && err.isNoResponders();
        // Right after a NATS outage the gateway may be back before the node has resubscribed.
        if (noResponders && this.state === 'starting' && Date.now() + NO_RESPONDERS_RETRY_MS < deadline && this.cluster.membership.isRoutable(this.node, req.incarnation)) {
          await delay(NO_RESPONDERS_RETRY_MS);
          continue;
        }
        const why = err instanceof TimeoutError ? `did not report it ready within ${this.cluster.placementTimeoutMs} ms` : noResponders ? 'is not listening' : (err as Error).message;
        throw new SwitchyardError('SY_NO_REPLICA', `placing ${this.replicaId} on node ${this.node} failed: the node ${why}`);
      }
    }
  }

  private async requestStop(): Promise<void> {
    const s = this.cluster.connection.subjects;
    try {
      await this.cluster.connection.nc.request(s.stop(this.node), pack({ key: this.key }), { timeout: this.cluster.stopTimeoutMs });
    } catch {
      // A dead or unreachable node has no replica left to stop.
    }
  }

  private async landFile(frame: FileDataFrame): Promise<void> {
    const ext = (frame.contentType.split('/')[1] ?? '').split(/[+;]/)[0]!.replace(/[^\w-]/g, '') || 'bin';
    const file = path.join(this.spec.outputDir, `remote-${this.key}-${frame.id}-${randomBytes(4).toString('hex')}.${ext}`);
    let out: ReplyFrame;
    try {
      await mkdir(this.spec.outputDir, { recursive: true });
      await writeFile(file, frame.data);
      const opened = openOutputFile(file, this.spec.outputDir);
      out = { t: 'file', id: frame.id, path: opened.path, fd: opened.fd, size: opened.size, contentType: frame.contentType, remove: !this.spec.keepFiles };
    } catch (err) {
      out = { t: 'error', id: frame.id, error: { code: 'SY_INTERNAL', message: `cannot store the file from node ${this.node}: ${(err as Error).message}` } };
    }
    if (this.state !== 'running') {
      if (out.t === 'file') {
        closeFd(out.fd, () => undefined);
        await unlink(file).catch(() => undefined);
      }
      return;
    }
    this.events!.onFrames([out]);
  }
}
