/**
 * An idle replica thread parks in Atomics.wait instead of waiting in its event loop, and the
 * gateway wakes it after each post. A thread in its loop is woken through libuv (an eventfd, epoll,
 * then the MessagePort's event dispatch); a parked one is woken by the futex itself and reads its
 * port at once with receiveMessageOnPort. bench:handoff measures the difference (port-park against
 * port-msgpack): about 10 µs and a quarter of the CPU of a lone round trip.
 *
 * A parked thread runs nothing else, so it parks only when nothing but its ports keeps its loop
 * alive (no timer, socket, file operation or immediate of the predictor's would be held up), never
 * while a request runs, and for at most PARK_MAX_MS at a time: a timer the predictor unref'd (which
 * does not keep the loop alive, so does not stop the park) fires at most that late. The gateway
 * turns parking off before it asks the thread to stop (piscina's stop task arrives on a port of
 * piscina's own, which a parked thread would not read).
 *
 * Wake-up protocol on an Int32Array over a SharedArrayBuffer, [SEQ, PARKED, OFF]: the gateway posts,
 * then bumps SEQ and notifies if PARKED. The thread reads SEQ, raises PARKED, looks at its port
 * once more, and waits only while SEQ is unchanged, so a post never goes unseen.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

const SEQ = 0;
const PARKED = 1;
const OFF = 2;

/** The longest a thread stays parked before its event loop runs once more. */
export const PARK_MAX_MS = 50;

export function createParking(): SharedArrayBuffer {
  return new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
}

/** The gateway's side: call after every post to the thread. */
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

/**
 * The thread's side: parks if `idle()` says so and nothing else is pending, handing what arrives on
 * `port` to `onMessage`, then returns to the event loop (a request runs there). True when it parked
 * the whole PARK_MAX_MS without a message: the caller parks again after one turn of its loop.
 */
export function parkWhileIdle(parking: Int32Array, port: MessagePort, idle: () => boolean, onMessage: (message: unknown) => void): boolean {
  if (Atomics.load(parking, OFF) === 1 || !idle() || !onlyPortsActive()) return false;
  const seq = Atomics.load(parking, SEQ);
  Atomics.store(parking, PARKED, 1);
  let received = receiveMessageOnPort(port);
  let timedOut = false;
  if (!received) {
    timedOut = Atomics.wait(parking, SEQ, seq, PARK_MAX_MS) === 'timed-out';
    received = receiveMessageOnPort(port);
  }
  Atomics.store(parking, PARKED, 0);
  if (received) timedOut = false;
  while (received) {
    onMessage(received.message);
    received = receiveMessageOnPort(port);
  }
  return timedOut && Atomics.load(parking, OFF) === 0;
}
