/**
 * An idle replica thread waits for work outside its event loop: it polls for a short while, then
 * parks in Atomics.wait, and the gateway wakes it after each post. A thread in its loop is woken
 * through libuv (an eventfd, epoll, then the MessagePort's event dispatch); a parked one is woken
 * by the futex itself and reads its port at once with receiveMessageOnPort; a polling one sees the
 * post within a few hundred nanoseconds, and a lone request put in its mailbox (mailbox.ts) costs
 * neither side a system call. bench:handoff measures each of these.
 *
 * Polling is for requests that come back to back (one client at one connection, say): a thread
 * polls only when its last wait ended within the poll window (`server.poll_us`), for at most that
 * long, and only as polling.ts allows (a spare core, a poller's place free). Anything else parks
 * at once.
 *
 * A parked thread runs nothing else, so it parks only when nothing but its ports keeps its loop
 * alive (no timer, socket, file operation or immediate of the predictor's would be held up), never
 * while a request runs, and for at most PARK_MAX_MS at a time: a timer the predictor unref'd (which
 * does not keep the loop alive, so does not stop the park) fires at most that late. The gateway
 * turns parking off before it asks the thread to stop (piscina's stop task arrives on a port of
 * piscina's own, which a parked thread would not read).
 *
 * Wake-up protocol on an Int32Array over a SharedArrayBuffer, [SEQ, PARKED, OFF]: the gateway
 * posts (or fills the mailbox), then bumps SEQ and notifies if PARKED. The thread reads SEQ before
 * it opens its mailbox and waits only while SEQ is unchanged, so a post never goes unseen.
 */
import type { Inbox } from './mailbox.js';
import { Poller, type Pollers } from './polling.js';

const SEQ = 0;
const PARKED = 1;
const OFF = 2;

/** The longest a thread stays parked before its event loop runs once more. */
export const PARK_MAX_MS = 50;

export function createParking(): SharedArrayBuffer {
  return new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
}

/** The gateway's side: call after every post to the thread, or message put in its mailbox. */
export function wakeParked(parking: Int32Array): void {
  Atomics.add(parking, SEQ, 1);
  if (Atomics.load(parking, PARKED) === 1) Atomics.notify(parking, SEQ);
}

/** The gateway's side: the thread will not park again, and wakes now if it is parked. */
export function stopParking(parking: Int32Array): void {
  Atomics.store(parking, OFF, 1);
  wakeParked(parking);
}

/** Only MessagePorts keep this thread's loop alive: parking holds nothing of anyone's up. */
function onlyPortsActive(): boolean {
  for (const resource of process.getActiveResourcesInfo()) if (resource !== 'MessagePort') return false;
  return true;
}

/** The thread's side of parking: call `park` when it may be idle. */
export class IdleParking<M> {
  private readonly parking: Int32Array;
  private readonly poller: Poller;
  /** The last wait ended by a request within the poll window: requests come back to back. */
  private backToBack = false;

  constructor(
    parking: SharedArrayBuffer,
    pollers: Pollers,
    private readonly inbox: Inbox<M>,
  ) {
    this.parking = new Int32Array(parking);
    this.poller = new Poller(pollers);
  }

  /**
   * Waits for work if `idle()` says so and nothing else is pending, handing what arrives to the
   * inbox, then returns to the event loop (a request runs there). True when it waited the whole
   * PARK_MAX_MS without a message: the caller parks again after one turn of its loop.
   */
  park(idle: () => boolean): boolean {
    const { parking } = this;
    if (Atomics.load(parking, OFF) === 1 || !idle() || !onlyPortsActive()) return false;
    const seq = Atomics.load(parking, SEQ);
    this.inbox.box.open();
    // A post that came before SEQ was read is on the port already, its event not yet run.
    const waiting = this.inbox.fromPortNow();
    if (waiting) {
      this.inbox.settle(waiting);
      return false;
    }
    const started = performance.now();
    const windowMs = this.poller.windowUs / 1000;
    if (this.backToBack) this.poller.poll(() => Atomics.load(parking, SEQ) !== seq, started + windowMs);
    let timedOut = false;
    if (Atomics.load(parking, SEQ) === seq) {
      Atomics.store(parking, PARKED, 1);
      timedOut = Atomics.wait(parking, SEQ, seq, PARK_MAX_MS) === 'timed-out';
      Atomics.store(parking, PARKED, 0);
    }
    const delivered = this.inbox.settle();
    this.backToBack = delivered && performance.now() - started < windowMs;
    return timedOut && !delivered && Atomics.load(parking, OFF) === 0;
  }
}
