/**
 * Node membership as a pure state machine: announces, heartbeats, leaves and clock ticks go in
 * (with the time they happened), transition events come out. No timers, no I/O; the gateway's
 * cluster loop feeds it and acts on the events.
 *
 *   (announce) → alive ⇄ suspect (no heartbeat for `suspectAfterMissed` intervals)
 *                  │ `reconnected` when its connection count rises (it moved to another NATS server)
 *                  └──────┴──→ dead (no heartbeat for `deadAfterMs`, a leave, or a newer incarnation)
 *
 * Dead is final for an incarnation: it is buried, and anything it sends later is reported as
 * `stale` (the loop then tells that node to come back as a new incarnation, whose replicas start
 * from nothing). Without this, a node partitioned away for a second would come back owning
 * replicas the gateway already re-placed elsewhere.
 */
import type { DeviceInfo } from '../../native/devices.js';
import type { ClusterConfig } from '../config/schema.js';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, type NodeAnnounce, type NodeHeartbeat, type NodeLeave } from '../../workers/cluster/subjects.js';

export interface MembershipTimings {
  /** How often nodes heartbeat. */
  heartbeatIntervalMs: number;
  /** A node that missed this many heartbeats in a row is suspect (routing avoids it). */
  suspectAfterMissed: number;
  /** A node silent this long is dead: its replicas are lost. */
  deadAfterMs: number;
}

export const DEFAULT_MEMBERSHIP_TIMINGS: Readonly<MembershipTimings> = Object.freeze({
  heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  suspectAfterMissed: 3,
  deadAfterMs: 1_000,
});

export function validateTimings(partial: Partial<MembershipTimings> = {}): MembershipTimings {
  const t = { ...DEFAULT_MEMBERSHIP_TIMINGS, ...partial };
  if (!Number.isInteger(t.heartbeatIntervalMs) || t.heartbeatIntervalMs <= 0) {
    throw new TypeError('heartbeatIntervalMs must be a positive integer');
  }
  if (!Number.isInteger(t.suspectAfterMissed) || t.suspectAfterMissed <= 0) {
    throw new TypeError('suspectAfterMissed must be a positive integer');
  }
  if (!(t.deadAfterMs > t.heartbeatIntervalMs * t.suspectAfterMissed)) {
    throw new TypeError('deadAfterMs must be longer than heartbeatIntervalMs × suspectAfterMissed');
  }
  return t;
}

/** The timings of the `cluster:` config section. */
export function timingsFromConfig(cluster: Pick<ClusterConfig, 'heartbeat_interval_ms' | 'suspect_after_missed' | 'dead_after_ms'>): MembershipTimings {
  return validateTimings({
    heartbeatIntervalMs: cluster.heartbeat_interval_ms,
    suspectAfterMissed: cluster.suspect_after_missed,
    deadAfterMs: cluster.dead_after_ms,
  });
}

export type NodeState = 'alive' | 'suspect';

export interface NodeMember {
  readonly name: string;
  readonly incarnation: string;
  readonly region: string;
  readonly devices: readonly DeviceInfo[];
  readonly maxReplicas: number;
  readonly state: NodeState;
  /** The node announced it is shutting down: place nothing new on it, route nothing new to it. */
  readonly draining: boolean;
  readonly lastSeenAt: number;
  /** In-flight requests per replica key, as of the last heartbeat. */
  readonly inFlight: Readonly<Record<string, number>>;
  /** How many times the node has connected to NATS (see NodeHeartbeat.connection). */
  readonly connection: number;
}

export type DeathReason = 'timeout' | 'left' | 'replaced';

export type MembershipEvent =
  | { type: 'joined'; node: NodeMember }
  | { type: 'suspect'; name: string; incarnation: string }
  | { type: 'recovered'; name: string; incarnation: string }
  | { type: 'draining'; name: string; incarnation: string }
  /** The node reconnected to NATS (its server died): messages to and from it meanwhile may be lost. */
  | { type: 'reconnected'; name: string; incarnation: string }
  | { type: 'dead'; name: string; incarnation: string; reason: DeathReason }
  /** A heartbeat from an incarnation this gateway never saw announce: ask nodes to announce. */
  | { type: 'unknown'; name: string; incarnation: string }
  /** A message from a buried incarnation: tell that node to reincarnate. */
  | { type: 'stale'; name: string; incarnation: string };

type MutableMember = { -readonly [K in keyof NodeMember]: NodeMember[K] };

/** Buried incarnations remembered per node name (enough to recognise stragglers). */
const BURIED_PER_NODE = 8;

export class Membership {
  readonly timings: MembershipTimings;
  private readonly members = new Map<string, MutableMember>();
  private readonly buried = new Map<string, string[]>();

  constructor(timings: Partial<MembershipTimings> = {}) {
    this.timings = validateTimings(timings);
  }

  get(name: string): NodeMember | undefined {
    return this.members.get(name);
  }

  list(): NodeMember[] {
    return [...this.members.values()];
  }

  /** Alive and not draining: a node new work may go to. */
  isRoutable(name: string, incarnation?: string): boolean {
    const m = this.members.get(name);
    return !!m && m.state === 'alive' && !m.draining && (incarnation === undefined || m.incarnation === incarnation);
  }

  isBuried(name: string, incarnation: string): boolean {
    return this.buried.get(name)?.includes(incarnation) ?? false;
  }

  announce(msg: NodeAnnounce, now: number): MembershipEvent[] {
    if (this.isBuried(msg.name, msg.incarnation)) return [{ type: 'stale', name: msg.name, incarnation: msg.incarnation }];
    const events: MembershipEvent[] = [];
    const existing = this.members.get(msg.name);
    if (existing && existing.incarnation === msg.incarnation) {
      existing.region = msg.region;
      existing.devices = msg.devices;
      existing.maxReplicas = msg.maxReplicas;
      return [...this.seen(existing, now), ...this.connected(existing, msg.connection)];
    }
    if (existing) events.push(this.bury(existing, 'replaced'));
    const node: MutableMember = {
      name: msg.name,
      incarnation: msg.incarnation,
      region: msg.region,
      devices: msg.devices,
      maxReplicas: msg.maxReplicas,
      state: 'alive',
      draining: false,
      lastSeenAt: now,
      inFlight: {},
      connection: typeof msg.connection === 'number' ? msg.connection : 1,
    };
    this.members.set(msg.name, node);
    events.push({ type: 'joined', node: { ...node } });
    return events;
  }

  heartbeat(msg: NodeHeartbeat, now: number): MembershipEvent[] {
    if (this.isBuried(msg.name, msg.incarnation)) return [{ type: 'stale', name: msg.name, incarnation: msg.incarnation }];
    const m = this.members.get(msg.name);
    if (!m || m.incarnation !== msg.incarnation) return [{ type: 'unknown', name: msg.name, incarnation: msg.incarnation }];
    m.inFlight = msg.inFlight;
    const events = [...this.seen(m, now), ...this.connected(m, msg.connection)];
    if (msg.draining && !m.draining) {
      m.draining = true;
      events.push({ type: 'draining', name: m.name, incarnation: m.incarnation });
    }
    return events;
  }

  leave(msg: NodeLeave): MembershipEvent[] {
    const m = this.members.get(msg.name);
    if (!m || m.incarnation !== msg.incarnation) return [];
    return [this.bury(m, 'left')];
  }

  /** Applies the passage of time: suspects and deaths. */
  tick(now: number): MembershipEvent[] {
    const events: MembershipEvent[] = [];
    const suspectAfterMs = this.timings.heartbeatIntervalMs * this.timings.suspectAfterMissed;
    for (const m of [...this.members.values()]) {
      const silentMs = now - m.lastSeenAt;
      if (silentMs > this.timings.deadAfterMs) {
        events.push(this.bury(m, 'timeout'));
      } else if (m.state === 'alive' && silentMs > suspectAfterMs) {
        m.state = 'suspect';
        events.push({ type: 'suspect', name: m.name, incarnation: m.incarnation });
      }
    }
    return events;
  }

  /**
   * The observer itself was cut off (its NATS connection dropped) and is back: silence during the
   * outage says nothing about the nodes, so every clock restarts now instead of killing them all.
   */
  resume(now: number): void {
    for (const m of this.members.values()) m.lastSeenAt = Math.max(m.lastSeenAt, now);
  }

  private seen(m: MutableMember, now: number): MembershipEvent[] {
    m.lastSeenAt = Math.max(m.lastSeenAt, now);
    if (m.state !== 'suspect') return [];
    m.state = 'alive';
    return [{ type: 'recovered', name: m.name, incarnation: m.incarnation }];
  }

  /** A higher connection count than known: the node reconnected since (nodes without the count never say). */
  private connected(m: MutableMember, connection: number | undefined): MembershipEvent[] {
    if (typeof connection !== 'number' || connection <= m.connection) return [];
    m.connection = connection;
    return [{ type: 'reconnected', name: m.name, incarnation: m.incarnation }];
  }

  private bury(m: MutableMember, reason: DeathReason): MembershipEvent {
    this.members.delete(m.name);
    const graves = this.buried.get(m.name) ?? [];
    graves.push(m.incarnation);
    if (graves.length > BURIED_PER_NODE) graves.shift();
    this.buried.set(m.name, graves);
    return { type: 'dead', name: m.name, incarnation: m.incarnation, reason };
  }
}
