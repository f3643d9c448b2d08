/**
 * Polling instead of sleeping, for the one case where it pays: requests that come back to back
 * while the machine has a core to spare. A thread that sleeps between them is woken through the
 * kernel each time (a futex, or an eventfd and epoll); on a virtual machine every wake-up is also a
 * trip through the hypervisor, and at one request at a time those wake-ups were most of what the
 * gateway added to raw uWS (bench/handoff.ts, bench/scenarios/latency.ts). A polling thread sees
 * the other's write in well under a microsecond.
 *
 * Polling takes a whole core for as long as it lasts, so it is rationed:
 * - only on a core that would otherwise be idle: the gateway's thread samples the machine's idle
 *   time every SAMPLE_MS (os.cpus(), so on Linux and macOS alike) and allows polling only while at
 *   least SPARE_CORES were idle or spent in its own polls (which they would give back). On a busy
 *   machine a poller would take the core from the very threads (the client's, the gateway's) a
 *   request waits on, and make it slower, not faster;
 * - by at most one core fewer than the machine has, at once, over the whole process;
 * - for at most the poll window, and never on: a poller taken off its core (a gap of PREEMPTED_MS
 *   between two looks at the clock) stops at once.
 *
 * The shared state is an Int32Array over a SharedArrayBuffer made by the gateway's thread and
 * handed to every replica thread: [ACTIVE pollers, ALLOWED 0/1, POLLED_US spent polling, WINDOW_US
 * the longest poll (`server.poll_us`; 0 turns polling off)].
 */
import { availableParallelism, cpus } from 'node:os';

const ACTIVE = 0;
const ALLOWED = 1;
const POLLED_US = 2;
const WINDOW_US = 3;

/** The longest poll unless configured (`server.poll_us`). */
export const DEFAULT_POLL_US = 200;

/** How often the gateway's thread looks at the machine's idle time. */
const SAMPLE_MS = 100;

/** Idle cores (averaged over a sample) needed for polling to be allowed. */
const SPARE_CORES = 0.5;

/** Clock reads cost more than a poll: the clock is read once per this many polls. */
const POLLS_PER_CLOCK = 32;

/**
 * A gap this long between two clock reads in a poll loop means the poller was taken off its core
 * for another thread. Shorter gaps are interrupts (on a virtual machine, timer ticks alone make
 * gaps of 30 µs about a thousand times a second) and are ignored.
 */
const PREEMPTED_MS = 0.5;

export interface Pollers {
  shared: SharedArrayBuffer;
  /** How many threads may poll at once. */
  max: number;
}

export function createPollers(): Pollers {
  const pollers = { shared: new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT), max: Math.max(0, availableParallelism() - 1) };
  Atomics.store(new Int32Array(pollers.shared), WINDOW_US, DEFAULT_POLL_US);
  return pollers;
}

/** This process's pollers: its thread and every replica thread it starts. */
export const processPollers = createPollers();

/** Sets the longest poll for this process's threads (`server.poll_us`); 0: they never poll. */
export function setPollWindow(us: number): void {
  const words = new Int32Array(processPollers.shared);
  Atomics.store(words, WINDOW_US, us);
  if (us === 0) Atomics.store(words, ALLOWED, 0);
}

export type PollOutcome = 'done' | 'expired' | 'preempted' | 'refused';

/** One thread's view of the process's pollers. */
export class Poller {
  private readonly words: Int32Array;
  private readonly max: number;

  constructor(pollers: Pollers) {
    this.words = new Int32Array(pollers.shared);
    this.max = pollers.max;
  }

  /** Polling is allowed now (a poller's place may still be taken). */
  get allowed(): boolean {
    return Atomics.load(this.words, ALLOWED) === 1;
  }

  /** The longest poll, in µs (0: polling is off). */
  get windowUs(): number {
    return Atomics.load(this.words, WINDOW_US);
  }

  /**
   * Polls until `done()` or until `until` (performance.now() ms), if polling is allowed now and a
   * poller's place is free. `done`: it became true; `expired`: it did not by `until`; `preempted`:
   * the poller lost its core and stopped; `refused`: it did not poll.
   */
  poll(done: () => boolean, until: number): PollOutcome {
    if (Atomics.load(this.words, ALLOWED) !== 1 || !this.enter()) return 'refused';
    const start = performance.now();
    let last = start;
    let finished = false;
    for (;;) {
      for (let i = 0; i < POLLS_PER_CLOCK && !finished; i++) finished = done();
      const now = performance.now();
      const outcome: PollOutcome | undefined = finished ? 'done' : now - last > PREEMPTED_MS ? 'preempted' : now >= until ? 'expired' : undefined;
      if (outcome !== undefined) {
        Atomics.add(this.words, POLLED_US, Math.round((now - start) * 1000));
        Atomics.sub(this.words, ACTIVE, 1);
        return outcome;
      }
      last = now;
    }
  }

  private enter(): boolean {
    for (;;) {
      const n = Atomics.load(this.words, ACTIVE);
      if (n >= this.max) return false;
      if (Atomics.compareExchange(this.words, ACTIVE, n, n + 1) === n) return true;
    }
  }
}

/** Idle time of all cores so far, in ms. */
function idleMs(): number {
  let idle = 0;
  for (const cpu of cpus()) idle += cpu.times.idle;
  return idle;
}

/**
 * The gateway thread's side: samples the machine's idle time and allows polling while cores are
 * spare. Unref'd: it never keeps the process alive. Returns a stop function.
 */
export function watchSpareCores(pollers: Pollers): () => void {
  const words = new Int32Array(pollers.shared);
  if (pollers.max === 0) return () => undefined;
  let lastAt = performance.now();
  let lastIdle = idleMs();
  let lastPolled = Atomics.load(words, POLLED_US);
  const timer = setInterval(() => {
    const at = performance.now();
    const idle = idleMs();
    const polled = Atomics.load(words, POLLED_US);
    // The pollers' own time counts as idle: it is what they would give back.
    const spare = (idle - lastIdle + ((polled - lastPolled) | 0) / 1000) / (at - lastAt);
    Atomics.store(words, ALLOWED, spare >= SPARE_CORES && Atomics.load(words, WINDOW_US) > 0 ? 1 : 0);
    lastAt = at;
    lastIdle = idle;
    lastPolled = polled;
  }, SAMPLE_MS);
  timer.unref();
  return () => clearInterval(timer);
}
