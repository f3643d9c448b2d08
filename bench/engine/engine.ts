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
import type { BucketReport, EngineMessage, WorkerMessage, WorkerTotals } from './totals.js';
import { generatorUse, summarizeRun, type RunResult } from './result.js';

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
    const buckets: BucketReport[] = [];
    const totals: WorkerTotals[] = [];
    let sent = 0;
    let ok = 0;
    let errors = 0;
    const okBySecond = new Map<number, number>();
    /** The run's start instant (0 while its connections are warmed). */
    let startAt = 0;
    const progress = options.onProgress
      ? setInterval(() => {
          if (startAt === 0) return;
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
    // The generator's own cost, measured over the run alone (not start-up, warming, summary or exit).
    let cpuBefore: NodeJS.CpuUsage | undefined;
    let wallBefore = 0;
    const start = (): number => {
      cpuBefore = process.cpuUsage();
      wallBefore = performance.now();
      startAt = Date.now() + START_DELAY_MS;
      return startAt;
    };
    try {
      if (inProcess) {
        const driver = new inProcess.LoadDriver(plan, 0, 1, onBuckets);
        await driver.warm();
        totals.push(await driver.run(start()));
      } else {
        await this.everyWorker((worker) => worker.postMessage({ type: 'warm', plan } satisfies EngineMessage), 'warmed', onBuckets);
        const startMessage: EngineMessage = { type: 'start', startAt: start() };
        await this.everyWorker((worker) => worker.postMessage(startMessage), 'done', onBuckets, (message) => totals.push(message.totals));
      }
    } finally {
      if (progress) clearInterval(progress);
      this.busy = false;
    }
    const generator = generatorUse(Math.max(1, this.workers.length), process.cpuUsage(cpuBefore), performance.now() - wallBefore - START_DELAY_MS, totals.reduce((n, t) => n + t.sent, 0));
    return summarizeRun({ ...plan, startAt }, buckets, totals, generator);
  }

  /** Sends each load thread a message and waits for its `until` answer (buckets on the way go to `onBuckets`). */
  private everyWorker<T extends 'warmed' | 'done'>(
    send: (worker: Worker) => void,
    until: T,
    onBuckets: (reports: BucketReport[]) => void,
    onAnswer?: (message: Extract<WorkerMessage, { type: T }>) => void,
  ): Promise<unknown> {
    return Promise.all(
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
              if (message.type === until) {
                onAnswer?.(message as Extract<WorkerMessage, { type: T }>);
                resolve();
              } else if (message.type === 'failed') reject(new Error(`load thread failed: ${message.message}`));
              else reject(new Error(`load thread answered ${message.type}, expected ${until}`));
            };
            const onError = (err: Error): void => {
              worker.off('message', onMessage);
              reject(err);
            };
            worker.on('message', onMessage);
            worker.once('error', onError);
            send(worker);
          }),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
