/**
 * The node agent: `switchyard node` on any machine. It announces its devices and region under the
 * subject prefix, heartbeats with its load, and hosts the replicas gateways place on it, each a
 * worker thread exactly like a local replica (ThreadReplicaLink), bridged to NATS: request batches
 * in, frame batches out (files as bytes), cancel and credit passed through.
 *
 * It subscribes only under its prefix and publishes only there (frames go to gateway ids checked
 * to be single tokens, replies only to inboxes under the prefix), so no message can make it relay
 * anything elsewhere. SIGTERM drains: it tells gateways it is draining, lets in-flight requests
 * finish (bounded), stops its replicas and says goodbye.
 */
import { close as closeFd, readFile as readFileFd } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { nuid, type Msg } from '@nats-io/transport-node';
import { ArtifactStore } from '../cluster/artifacts.js';
import { materializeBundle, type PackageLocator } from '../cluster/bundles.js';
import { ClusterConnection, FragmentAssembler } from '../cluster/connection.js';
import {
  isSubjectToken,
  replicaSubjectParts,
  type NodeAnnounce,
  type NodeHeartbeat,
  type PlaceReply,
  type PlaceRequest,
  type RemoteFrame,
  type RemoteRequestBatch,
  type Reincarnate,
  type Fence,
  type StopRequest,
} from '../cluster/subjects.js';
import { SwitchyardError, toSwitchyardError } from '../protocol/errors.js';
import { discoverDevices, selectDevices, type DeviceInfo } from '../../native/devices.js';
import { ThreadReplicaLink } from '../pool/thread-link.js';
import { setPollWindow } from '../pool/polling.js';
import { TurnBatcher } from '../protocol/turn-batcher.js';
import { RequestOrigins, type Origin } from './request-origins.js';
import { packageLocator } from './package-locator.js';
import { defaultOutputDir } from '../pool/output-folder.js';
import { pack, unpack, type ControlMessage, type ReplyFrame } from '../protocol/envelopes.js';

import { parseNodeAgentOptions, type NodeAgentOptions, type NodeAgentSettings } from './options.js';

export type { NodeAgentOptions } from './options.js';

interface Hosted {
  key: string;
  /** The gateway that placed the replica. */
  gateway: string;
  link: ThreadReplicaLink;
  /** Requests in flight, by the id the replica knows them by and by their sender's id. */
  inFlight: RequestOrigins;
  /** Every gateway that sent requests here: each hears when the replica is lost. */
  peers: Set<string>;
  /** Frames produced in one turn leave as one message per gateway: gateway → its outbox. */
  outboxes: Map<string, TurnBatcher<RemoteFrame>>;
  ready: boolean;
}

const TERMINAL = new Set(['result', 'file', 'end', 'error']);

export class NodeAgent {
  private incarnationNow = nuid.next();
  private readonly replicas = new Map<string, Hosted>();
  /** Keys whose placement is under way; a stop removes the key, and the placement gives up. */
  private readonly placing = new Set<string>();
  /**
   * The highest leadership token seen per endpoint (federation): a placement or stop carrying a
   * lower one comes from a leader that has since been replaced, and is refused.
   */
  private readonly fences = new Map<string, number>();
  private readonly assembler = new FragmentAssembler();
  private readonly cacheDir: string;
  private readonly locatePackage: PackageLocator;
  private artifacts: Promise<ArtifactStore> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  /** Connections to NATS so far (announced: a rise tells gateways to retry what they had in flight here). */
  private connections = 1;
  private draining = false;
  private closing: Promise<void> | undefined;
  private readonly log: NonNullable<NodeAgentSettings['log']>;

  private constructor(
    readonly name: string,
    readonly region: string,
    readonly devices: readonly DeviceInfo[],
    readonly connection: ClusterConnection,
    private readonly opts: NodeAgentSettings,
  ) {
    this.cacheDir = path.join(this.workDir, 'artifacts');
    this.locatePackage = packageLocator(this.workDir);
    this.log = opts.log ?? (() => undefined);
  }

  /** Throws NodeOptionsError for options the schema refuses (workers/node/options.ts). */
  static async start(options: NodeAgentOptions): Promise<NodeAgent> {
    const opts = parseNodeAgentOptions(options);
    // The replicas this process starts poll for their next request up to this long (workers/pool/polling.ts).
    setPollWindow(opts.pollUs);
    const devices = selectDevices(opts.devices, await discoverDevices());
    const connection = await ClusterConnection.connect({ ...opts, servers: opts.nats, name: `switchyard-node-${opts.name}` });
    const agent = new NodeAgent(opts.name, opts.region, devices, connection, opts);
    agent.listen();
    return agent;
  }

  get incarnation(): string {
    return this.incarnationNow;
  }

  get workDir(): string {
    return path.resolve(this.opts.workDir ?? path.join('.switchyard', `node-${this.name}`));
  }

  get maxReplicas(): number {
    return this.opts.maxReplicas ?? this.devices.find((d) => d.kind === 'cpu')?.cores ?? 1;
  }

  get heartbeatIntervalMs(): number {
    return this.opts.heartbeatIntervalMs;
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /** Replica keys hosted now. */
  hostedKeys(): string[] {
    return [...this.replicas.keys()];
  }

  /** Drains and stops: in-flight work finishes (up to `drainTimeoutMs`), then replicas stop and the connection closes. */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  private listen(): void {
    const s = this.connection.subjects;
    const nc = this.connection.nc;
    const on = (subject: string, handle: (msg: Msg) => void | Promise<void>) =>
      nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          Promise.resolve()
            .then(() => handle(msg))
            .catch((e: unknown) => this.log('dropped a message', { subject: msg.subject, error: (e as Error).message }));
        },
      });
    on(s.discover, () => this.announce());
    on(s.place(this.name), (msg) => this.onPlace(msg));
    on(s.stop(this.name), (msg) => this.onStop(msg));
    on(s.reincarnate(this.name), (msg) => this.onReincarnate(unpack<Reincarnate>(msg.data)));
    on(s.nodeReplicas(this.name), (msg) => this.onReplicaMessage(msg));
    on(s.fence, (msg) => {
      const fence = unpack<Fence>(msg.data);
      this.fenced(fence);
    });
    this.connection.onStatus((status) => {
      if (status.type === 'reconnected') {
        this.connections++;
        this.log('reconnected to NATS', { server: status.server, connection: this.connections });
        this.announce();
      }
      if (status.type === 'closed' && !this.closing) void this.stopAll('the node lost its NATS connection for good');
    });
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatIntervalMs);
    this.announce();
    this.log('node up', { name: this.name, region: this.region, incarnation: this.incarnation, devices: this.devices.map((d) => d.id) });
  }

  private announce(): void {
    const msg: NodeAnnounce = {
      name: this.name,
      incarnation: this.incarnationNow,
      region: this.region,
      devices: [...this.devices],
      maxReplicas: this.maxReplicas,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      connection: this.connections,
    };
    this.connection.publish(this.connection.subjects.announce, pack(msg));
  }

  private heartbeat(): void {
    const inFlight: Record<string, number> = {};
    for (const [key, hosted] of this.replicas) if (hosted.ready) inFlight[key] = hosted.inFlight.size;
    const msg: NodeHeartbeat = { name: this.name, incarnation: this.incarnationNow, seq: ++this.seq, inFlight, draining: this.draining, connection: this.connections };
    this.connection.publish(this.connection.subjects.heartbeat, pack(msg));
  }

  /** Answers a request, but only on an inbox under our prefix: a node relays nothing. */
  private reply(msg: Msg, value: unknown): void {
    if (msg.reply?.startsWith(`${this.connection.subjects.inboxPrefix}.`)) this.connection.publish(msg.reply, pack(value));
  }

  private async onPlace(msg: Msg): Promise<void> {
    let req: PlaceRequest;
    try {
      req = unpack<PlaceRequest>(msg.data);
      if (!isSubjectToken(req.key) || !isSubjectToken(req.gateway) || typeof req.replicaId !== 'string' || typeof req.endpoint !== 'string') {
        throw new SwitchyardError('SY_BAD_REQUEST', 'malformed placement');
      }
    } catch (err) {
      this.reply(msg, { ok: false, error: toSwitchyardError(err, 'SY_BAD_REQUEST').toJSON() } satisfies PlaceReply);
      return;
    }
    try {
      await this.place(req);
      this.reply(msg, { ok: true } satisfies PlaceReply);
    } catch (err) {
      this.log('placement failed', { replica: req.replicaId, error: (err as Error).message });
      this.reply(msg, { ok: false, error: toSwitchyardError(err, 'SY_NO_REPLICA').toJSON() } satisfies PlaceReply);
    }
  }

  /** True when `fence` is current (or absent); raises the endpoint's fence to it. */
  private fenced(fence: Fence | undefined): boolean {
    if (fence === undefined) return true;
    if (typeof fence?.endpoint !== 'string' || !Number.isSafeInteger(fence.token)) return false;
    const known = this.fences.get(fence.endpoint) ?? 0;
    if (fence.token < known) return false;
    this.fences.set(fence.endpoint, fence.token);
    return true;
  }

  private async place(req: PlaceRequest): Promise<void> {
    if (!this.fenced(req.fence)) throw new SwitchyardError('SY_NO_REPLICA', `placement of ${req.replicaId} refused: its leader was replaced (fencing token ${req.fence?.token} is stale)`);
    if (this.draining) throw new SwitchyardError('SY_SHUTTING_DOWN', `node ${this.name} is draining`);
    if (req.incarnation !== this.incarnationNow) throw new SwitchyardError('SY_NO_REPLICA', `node ${this.name} restarted since it was chosen`);
    if (!this.devices.some((d) => d.id === req.device)) {
      throw new SwitchyardError('SY_NO_REPLICA', `node ${this.name} does not offer ${req.device} (it offers ${this.devices.map((d) => d.id).join(', ')})`);
    }
    if (this.replicas.has(req.key) || this.placing.has(req.key)) throw new SwitchyardError('SY_BAD_REQUEST', `replica key ${req.key} is already placed here`);
    if (new Set([...this.replicas.keys(), ...this.placing]).size >= this.maxReplicas) {
      throw new SwitchyardError('SY_NO_REPLICA', `node ${this.name} is full (${this.maxReplicas} replicas)`);
    }
    this.placing.add(req.key);
    try {
      await this.load(req);
    } finally {
      this.placing.delete(req.key);
    }
  }

  private async load(req: PlaceRequest): Promise<void> {
    const abandoned = () => new SwitchyardError('SY_NO_REPLICA', `replica ${req.replicaId} was stopped while it started`);
    const store = req.predictor || req.model ? await (this.artifacts ??= ArtifactStore.open(this.connection)) : undefined;
    const predictorPath = req.predictor ? await materializeBundle(store!, req.predictor, this.cacheDir, this.locatePackage) : undefined;
    const modelPath = req.model ? await store!.fetch(req.model, this.cacheDir) : undefined;
    if (!this.placing.has(req.key)) throw abandoned();
    const link = new ThreadReplicaLink(
      { replicaId: req.replicaId, endpoint: req.endpoint, device: req.device, node: this.name, region: this.region },
      {
        predictorPath,
        modelPath,
        outputDir: path.join(defaultOutputDir(`node-${this.name}`), req.key),
        settings: req.settings ?? {},
        produces: req.produces ?? [],
        keepFiles: req.keepFiles === true,
      },
    );
    const hosted: Hosted = {
      key: req.key,
      gateway: req.gateway,
      link,
      inFlight: new RequestOrigins(),
      peers: new Set([req.gateway]),
      outboxes: new Map(),
      ready: false,
    };
    this.replicas.set(req.key, hosted);
    try {
      await link.start({ onFrames: (frames) => this.onFrames(hosted, frames), onLost: (reason) => this.onLost(hosted, reason) });
    } catch (err) {
      this.replicas.delete(req.key);
      throw err;
    }
    if (this.replicas.get(req.key) !== hosted) {
      await link.stop();
      throw abandoned();
    }
    hosted.ready = true;
    this.log('replica ready', { replica: req.replicaId, key: req.key, device: req.device });
  }

  private async onStop(msg: Msg): Promise<void> {
    const { key, fence } = unpack<StopRequest>(msg.data);
    if (!this.fenced(fence)) {
      this.reply(msg, { ok: false, error: { code: 'SY_NO_REPLICA', message: `stop of ${key} refused: its leader was replaced` } });
      return;
    }
    this.placing.delete(key);
    const hosted = this.replicas.get(key);
    if (hosted) {
      this.replicas.delete(key);
      if (hosted.ready) await hosted.link.stop();
      this.log('replica stopped', { replica: hosted.link.replicaId, key });
    }
    this.reply(msg, { ok: true });
  }

  private async onReincarnate(msg: Reincarnate): Promise<void> {
    if (msg?.incarnation !== this.incarnationNow || this.closing) return;
    // A gateway buried this incarnation and re-placed its replicas: start over as a new member.
    await this.stopAll(`node ${this.name} was declared dead and rejoined`);
    this.incarnationNow = nuid.next();
    this.log('rejoining as a new incarnation', { incarnation: this.incarnationNow });
    this.announce();
  }

  private onReplicaMessage(msg: Msg): void {
    const parts = replicaSubjectParts(msg.subject);
    if (!parts) return;
    const hosted = this.replicas.get(parts.key);
    if (parts.kind === 'ctl') {
      if (!hosted?.ready) return;
      const control = unpack<ControlMessage & { gw?: unknown }>(msg.data);
      const gateway = isSubjectToken(control.gw) ? control.gw : hosted.gateway;
      if (control.t === 'credits') {
        // Credit for several streams at once: each id becomes this node's id for the request.
        const ids: number[] = [];
        const ns: number[] = [];
        control.ids.forEach((id, i) => {
          const local = hosted.inFlight.local(gateway, id);
          if (local === undefined) return;
          ids.push(local);
          ns.push(control.ns[i]!);
        });
        if (ids.length > 0) hosted.link.control({ t: 'credits', ids, ns });
        return;
      }
      const local = hosted.inFlight.local(gateway, control.id);
      if (local === undefined) return;
      // A cancelled request ends without a frame.
      if (control.t === 'cancel') hosted.inFlight.finish(local);
      hosted.link.control(control.t === 'cancel' ? { t: 'cancel', id: local } : { t: 'credit', id: local, n: control.n });
      return;
    }
    if (parts.kind !== 'req') return;
    const data = this.assembler.accept(msg);
    if (!data) return;
    const batch = unpack<RemoteRequestBatch>(data);
    if (!hosted?.ready) {
      if (isSubjectToken(batch.gateway)) {
        const subject = this.connection.subjects.lost(batch.gateway, parts.key);
        this.connection.publish(subject, pack({ reason: `node ${this.name} has no replica ${parts.key}` }));
      }
      return;
    }
    // Deadlines are the gateway's epoch ms: shift them onto this clock.
    if (!isSubjectToken(batch.gateway)) return;
    const skew = Date.now() - (Number(batch.now) || Date.now());
    hosted.peers.add(batch.gateway);
    for (const req of batch.reqs) {
      req.deadline += skew;
      req.id = hosted.inFlight.admit(batch.gateway, req.id);
    }
    hosted.link.send(batch.reqs);
  }

  private queue(hosted: Hosted, gateway: string, frame: RemoteFrame): void {
    let outbox = hosted.outboxes.get(gateway);
    if (!outbox) {
      const subject = this.connection.subjects.frames(gateway, hosted.key);
      outbox = new TurnBatcher((frames) => this.connection.publish(subject, pack({ frames })));
      hosted.outboxes.set(gateway, outbox);
    }
    outbox.push(frame);
  }

  private onFrames(hosted: Hosted, frames: ReplyFrame[]): void {
    for (const frame of frames) {
      const origin = TERMINAL.has(frame.t) ? hosted.inFlight.finish(frame.id) : hosted.inFlight.origin(frame.id);
      if (!origin) continue;
      if (frame.t === 'file') {
        void this.shipFile(hosted, origin, frame);
        continue;
      }
      // The frames were unpacked for this call alone: each takes its sender's id in place.
      frame.id = origin.id;
      this.queue(hosted, origin.gateway, frame);
    }
  }

  /** A file exists only on this machine: send its bytes; the gateway writes them to its own folder. */
  private async shipFile(hosted: Hosted, origin: Origin, frame: Extract<ReplyFrame, { t: 'file' }>): Promise<void> {
    try {
      // The descriptor the replica checked, never the name (which may have been swapped since).
      const data = await new Promise<Buffer>((resolve, reject) => readFileFd(frame.fd, (err, bytes) => (err ? reject(err) : resolve(bytes))));
      this.queue(hosted, origin.gateway, { t: 'filedata', id: origin.id, data, contentType: frame.contentType });
    } catch (err) {
      this.queue(hosted, origin.gateway, { t: 'error', id: origin.id, error: { code: 'SY_PREDICTOR_OUTPUT', message: `cannot read the output file: ${(err as Error).message}` } });
    }
    closeFd(frame.fd, () => undefined);
    if (frame.remove) await unlink(frame.path).catch(() => undefined);
  }

  private onLost(hosted: Hosted, reason: string): void {
    if (this.replicas.get(hosted.key) !== hosted) return;
    this.replicas.delete(hosted.key);
    this.log('replica lost', { key: hosted.key, reason });
    this.tellLost(hosted, reason);
  }

  private tellLost(hosted: Hosted, reason: string): void {
    for (const gateway of hosted.peers) this.connection.publish(this.connection.subjects.lost(gateway, hosted.key), pack({ reason }));
  }

  private async stopAll(reason: string): Promise<void> {
    const all = [...this.replicas.values()];
    this.replicas.clear();
    for (const hosted of all) this.tellLost(hosted, reason);
    await Promise.all(all.map((hosted) => hosted.link.stop().catch(() => undefined)));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    this.heartbeat();
    const deadline = Date.now() + this.opts.drainTimeoutMs;
    while (Date.now() < deadline && [...this.replicas.values()].some((h) => h.inFlight.size > 0)) await delay(50);
    clearInterval(this.heartbeatTimer);
    const all = [...this.replicas.values()];
    this.replicas.clear();
    await Promise.all(all.map((hosted) => hosted.link.stop().catch(() => undefined)));
    this.connection.publish(this.connection.subjects.leave, pack({ name: this.name, incarnation: this.incarnationNow }));
    await this.connection.close();
    this.log('node stopped', { name: this.name });
  }
}

export function runNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  return NodeAgent.start(opts);
}
