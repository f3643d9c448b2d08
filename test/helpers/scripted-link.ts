/**
 * A replica that does nothing by itself: the test plays its frames through `events`, settles its
 * start when it likes, and reads the requests, control messages and stops it was sent. Orderings
 * that real threads make rare become certain.
 */
import type { ControlMessage, RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink, ReplicaLinkEvents, StopOptions } from '../../workers/protocol/link.js';

export interface ScriptedLinkOptions {
  /** Start succeeds at once (default); otherwise it waits for `failStart()`. */
  autoStart?: boolean;
  /** The replica confirms cancels (the endpoint then waits for the confirmation). */
  confirmsCancels?: boolean;
  /** The node it runs on (default `local`: this machine; any other name makes it a node agent's). */
  node?: string;
}

export class ScriptedLink implements ReplicaLink {
  readonly endpoint: string;
  readonly device = 'cpu';
  readonly node: string;
  readonly region = 'local';
  readonly confirmsCancels: boolean;
  readonly sent: RequestEnvelope[] = [];
  readonly controls: ControlMessage[] = [];
  readonly stops: StopOptions[] = [];
  events!: ReplicaLinkEvents;
  private readonly autoStart: boolean;
  private settleStart!: (ok: boolean) => void;

  constructor(
    readonly replicaId: string,
    options: ScriptedLinkOptions = {},
  ) {
    this.endpoint = replicaId.split('/')[0]!;
    this.autoStart = options.autoStart ?? true;
    this.confirmsCancels = options.confirmsCancels ?? false;
    this.node = options.node ?? 'local';
  }

  start(events: ReplicaLinkEvents): Promise<void> {
    this.events = events;
    if (this.autoStart) return Promise.resolve();
    return new Promise((resolve, reject) => (this.settleStart = (ok) => (ok ? resolve() : reject(new Error('setup aborted: the thread was destroyed')))));
  }

  failStart(): void {
    this.settleStart(false);
  }

  send(reqs: RequestEnvelope[]): void {
    this.sent.push(...reqs);
  }

  control(msg: ControlMessage): void {
    this.controls.push(msg);
  }

  async stop(options: StopOptions = {}): Promise<void> {
    this.stops.push(options);
  }
}
