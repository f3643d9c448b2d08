/**
 * The main-thread side of the engine: a few worker threads that generate load (worker.ts), given
 * one plan at a time with a common start instant; their per-second buckets and totals come back
 * as histograms' counts and are merged here (autocannon's histUtil style).
 *
 * With 0 threads the load runs on the main thread itself (the same driver, in process): no thread
 * to start and no second copy of the modules to load, which is most of a short run's fixed cost.
 * The main thread has nothing else to do during a run but a once-a-second progress line.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { LoadPlan } from './plan.js';
import type { BucketReport, WorkerMessage, WorkerTotals } from './totals.js';
import { summarizeRun, type RunResult } from './result.js';

/** Counts so far, about once a second while a run goes. */
export interface Progress {
  elapsedS: number;
  sent: number;
  ok: number;
  errors: number;
  /** Answers completed in the last full second. */
  lastSecondOk: number;
}

export interface RunOptions {
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

/**
 * One load thread per spare core (at most 8), the main thread only merging and printing. With one
 * spare core or none, the one load thread is the main thread itself (0): a worker would only add
 * its start-up while the main thread waits.
 */
export function defaultWorkers(cores = availableParallelism()): number {
  const spare = cores - 1;
  return spare >= 2 ? Math.min(8, spare) : 0;
}

/** Gives the threads time to receive the plan before its start instant. */
const START_DELAY_MS = 30;

export class Engine {
  private readonly workers: Worker[];
  private busy = false;
  /** Settles when every thread has loaded its modules, so the first start instant is not missed. */
  private readonly ready: Promise<unknown>;
  /** With 0 threads: the driver, loaded here before any start instant is set. */
  private readonly inProcess: Promise<typeof import('./driver.js')> | undefined;

  constructor(threads = defaultWorkers()) {
    if (!Number.isInteger(threads) || threads < 0) throw new Error('workers must be a non-negative integer');
    const file = new URL('./worker.js', import.meta.url);
    this.workers = Array.from({ length: threads }, (_, index) => new Worker(file, { workerData: { index, workers: threads } }));
    this.inProcess = threads === 0 ? import('./driver.js') : undefined;
    this.ready = Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            worker.once('message', () => resolve());
            worker.once('error', reject);
          }),
      ),
    );
  }

  /** Load-generating threads (0: the load runs on the main thread). */
  get threads(): number {
    return this.workers.length;
  }

  async run(plan: Omit<LoadPlan, 'startAt'>, options: RunOptions = {}): Promise<RunResult> {
    if (this.busy) throw new Error('the engine runs one plan at a time');
    this.busy = true;
    await this.ready;
    const inProcess = this.inProcess && (await this.inProcess);
    const startAt = Date.now() + START_DELAY_MS;
    const full: LoadPlan = { ...plan, startAt };
    const buckets: BucketReport[] = [];
    const totals: WorkerTotals[] = [];
    let sent = 0;
    let ok = 0;
    let errors = 0;
    const okBySecond = new Map<number, number>();
    const progress = options.onProgress
      ? setInterval(() => {
          const elapsedS = Math.floor((Date.now() - startAt) / 1000);
          options.onProgress!({ elapsedS, sent, ok, errors, lastSecondOk: okBySecond.get(elapsedS - 1) ?? 0 });
        }, 1000)
      : undefined;
    const onBuckets = (reports: BucketReport[]): void => {
      for (const b of reports) {
        buckets.push(b);
        sent += b.sent;
        ok += b.ok;
        errors += b.errors;
        okBySecond.set(b.second, (okBySecond.get(b.second) ?? 0) + b.ok);
      }
    };
    try {
      if (inProcess) totals.push(await new inProcess.LoadDriver(full, 0, 1, onBuckets).run());
      await Promise.all(
        this.workers.map(
          (worker) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (message: WorkerMessage): void => {
                if (message.type === 'ready') return;
                if (message.type === 'buckets') {
                  onBuckets(message.buckets);
                  return;
                }
                worker.off('message', onMessage);
                worker.off('error', onError);
                if (message.type === 'done') {
                  totals.push(message.totals);
                  resolve();
                } else reject(new Error(`load thread failed: ${message.message}`));
              };
              const onError = (err: Error): void => {
                worker.off('message', onMessage);
                reject(err);
              };
              worker.on('message', onMessage);
              worker.once('error', onError);
              worker.postMessage(full);
            }),
        ),
      );
    } finally {
      if (progress) clearInterval(progress);
      this.busy = false;
    }
    return summarizeRun(full, buckets, totals);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
