/**
 * A local replica: one worker thread holding one loaded model, hosted by a one-thread Piscina.
 *
 * Piscina owns the thread (start, resource limits, `setup` and `stop` as tasks, teardown). The data
 * path bypasses piscina's task queue: requests go in batches over a dedicated MessagePort, because
 * one piscina task per request costs ~32 µs of CPU and the batch per event-loop turn is what makes
 * cheap requests fast. `atomics: 'disabled'` keeps the worker's event loop free between tasks, so
 * the port is served while the thread is otherwise idle. An idle thread with nothing else pending
 * parks on a shared word instead, which every post here wakes (idle-park.ts): a quicker wake-up.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { fromWire } from '../protocol/errors.js';
import { postPacked, type ControlMessage, type RequestEnvelope } from '../protocol/envelopes.js';
import type { ReplicaLink, ReplicaLinkEvents, ReplicaPlacement, StopOptions } from '../protocol/link.js';
import { packRequestsInline, postRequests, readFrames, type ThreadMessage } from './payload-transfer.js';
import { createParking, stopParking, wakeParked } from './idle-park.js';
import { Poller, processPollers, watchSpareCores } from './polling.js';
import { createMailbox, Inbox, Mailbox } from './mailbox.js';
import type { SetupTask, TaskResult } from './replica-worker.js';

export interface ReplicaSpec {
  predictorPath?: string | undefined;
  modelPath?: string | undefined;
  outputDir: string;
  settings: Record<string, unknown>;
  produces: string[];
  keepFiles: boolean;
  /** Unary answers above this are refused in the replica, before they are sent (absent: no limit). */
  maxResponseBytes?: number | undefined;
}

const WORKER_FILE = new URL('./replica-worker.js', import.meta.url).href;
/** This thread polls for lone answers as polling.ts allows. */
const poller = new Poller(processPollers);
let watchingCores = false;
const MAX_POLLS_SKIPPED = 64;
const STOP_TIMEOUT_MS = 5_000;

export class ThreadReplicaLink implements ReplicaLink {
  readonly replicaId: string;
  readonly endpoint: string;
  readonly device: string;
  readonly node: string;
  readonly region: string;
  /** The worker answers each cancel as it reads it: no answer means its event loop is stuck. */
  readonly confirmsCancels = true;
  private pool: Piscina | undefined;
  private port: MessagePort | undefined;
  /** Where the thread parks while idle; every post wakes it (idle-park.ts). */
  private readonly parking = new Int32Array(createParking());
  /** A lone request goes here while the thread polls; its answer comes back here while this thread polls (mailbox.ts). */
  private readonly requestBox = createMailbox();
  private readonly replyBox = createMailbox();
  private requests: Mailbox | undefined;
  private inbox: Inbox<ThreadMessage> | undefined;
  private requestsBoxed = 0;
  /**
   * A poll for an answer that did not come in the window was CPU for nothing: the next lone
   * requests are not polled for, 1, then 2, 4… up to MAX_POLLS_SKIPPED after further misses,
   * until a poll finds its answer again. A slow predictor costs one missed poll in 64 requests.
   */
  private pollsToSkip = 0;
  private skipAfterMiss = 1;
  private stopping = false;
  private lost = false;
  private events: ReplicaLinkEvents | undefined;

  constructor(placement: ReplicaPlacement, private readonly spec: ReplicaSpec) {
    this.replicaId = placement.replicaId;
    this.endpoint = placement.endpoint;
    this.device = placement.device;
    this.node = placement.node;
    this.region = placement.region;
  }

  async start(events: ReplicaLinkEvents): Promise<void> {
    this.events = events;
    if (!watchingCores) {
      watchingCores = true;
      watchSpareCores(processPollers);
    }
    const pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 2,
      atomics: 'disabled',
      name: 'default',
      // A file answer's descriptor is opened in the replica thread and handed to the gateway's
      // thread, which closes it once sent. A thread that tracked it would close that number again
      // when it exits, by then often a socket's: libuv aborts the process on the next poll.
      trackUnmanagedFds: false,
    });
    this.pool = pool;
    pool.on('error', (err: Error) => this.markLost(`worker thread failed: ${err.message}`));
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.requests = new Mailbox(this.requestBox);
    this.inbox = new Inbox<ThreadMessage>(port1, new Mailbox(this.replyBox), (message) => events.onFrames(readFrames(message)));
    port1.on('close', () => this.markLost('worker thread exited'));
    const task: SetupTask = {
      op: 'setup',
      port: port2,
      endpoint: this.endpoint,
      replicaId: this.replicaId,
      device: this.device,
      predictorPath: this.spec.predictorPath,
      modelPath: this.spec.modelPath,
      outputDir: this.spec.outputDir,
      settings: this.spec.settings,
      keepFiles: this.spec.keepFiles,
      maxResponseBytes: this.spec.maxResponseBytes,
      parking: this.parking.buffer as SharedArrayBuffer,
      pollers: processPollers,
      requestBox: this.requestBox,
      replyBox: this.replyBox,
    };
    let result: TaskResult;
    try {
      result = (await pool.run(task, { transferList: [port2] })) as TaskResult;
    } catch (err) {
      result = { ok: false, error: { code: 'SY_PREDICTOR_ERROR', message: `replica thread failed during setup: ${(err as Error).message}` } };
    }
    if (!result.ok) {
      this.stopping = true;
      port1.close();
      await pool.destroy();
      throw fromWire(result.error);
    }
  }

  send(reqs: RequestEnvelope[], lone = false): void {
    if (this.lost || !this.port) return;
    // An answer posted from now on (not put in the mailbox) ends a poll for it.
    const repliesBefore = lone ? this.inbox!.box.posted : 0;
    if (!this.putInMailbox(reqs)) {
      postRequests(this.port, reqs);
      this.requests!.notePosted();
    }
    wakeParked(this.parking);
    // A lone request's answer is polled for after the caller's turn (its handler has returned),
    // not inside it.
    if (!lone || !poller.allowed) return;
    if (this.pollsToSkip > 0) {
      this.pollsToSkip--;
      return;
    }
    const windowUs = poller.windowUs;
    queueMicrotask(() => this.awaitAnswer(repliesBefore, windowUs));
  }

  control(msg: ControlMessage): void {
    if (this.lost || !this.port) return;
    postPacked(this.port, msg);
    this.requests!.notePosted();
    wakeParked(this.parking);
  }

  /** A polling thread takes a small request from its mailbox: no post, no wake-up of its loop. */
  private putInMailbox(reqs: RequestEnvelope[]): boolean {
    const box = this.requests!;
    if (!box.isOpen) return false;
    const packed = packRequestsInline(reqs);
    if (packed === undefined || !box.put(packed)) return false;
    this.requestsBoxed++;
    return true;
  }

  /** How many request batches went through the mailbox instead of the port. */
  get mailboxed(): { requests: number } {
    return { requests: this.requestsBoxed };
  }

  /**
   * Polls for up to `awaitUs` for the thread's answer, and delivers it (with anything else the
   * thread sent) at once instead of in a later turn of this event loop: a quick answer to a lone
   * request then costs no wake-up of this thread.
   */
  private awaitAnswer(repliesBefore: number, awaitUs: number): void {
    const inbox = this.inbox;
    if (this.lost || !inbox) return;
    inbox.box.open();
    const box = inbox.box;
    const outcome = poller.poll(() => !box.isOpen || box.posted !== repliesBefore, performance.now() + awaitUs / 1000);
    if (outcome === 'done') {
      this.skipAfterMiss = 1;
    } else if (outcome === 'expired') {
      this.pollsToSkip = this.skipAfterMiss;
      this.skipAfterMiss = Math.min(MAX_POLLS_SKIPPED, this.skipAfterMiss * 2);
    }
    inbox.settle();
  }

  /** `now`: terminate the thread without asking it to tear down (it works even on a thread stuck in a loop). */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const pool = this.pool;
    if (!pool) return;
    // piscina's stop task comes on piscina's port, which a parked thread does not read.
    stopParking(this.parking);
    if (!this.lost && !options.now) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pool.run({ op: 'stop' }).catch(() => undefined),
        new Promise((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
    }
    this.port?.close();
    await pool.destroy();
  }

  private markLost(reason: string): void {
    if (this.stopping || this.lost) return;
    this.lost = true;
    this.events?.onLost(reason);
    void this.pool?.destroy().catch(() => undefined);
  }
}

