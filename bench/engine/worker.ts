/** A load-generating thread: runs one plan at a time for the main thread (engine.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { LoadDriver } from './driver.js';
import type { LoadPlan } from './plan.js';
import type { WorkerMessage } from './totals.js';

const { index, workers } = workerData as { index: number; workers: number };
const port = parentPort!;
const post = (message: WorkerMessage): void => port.postMessage(message);

post({ type: 'ready' });

port.on('message', (plan: LoadPlan) => {
  const driver = new LoadDriver(plan, index, workers, (buckets) => post({ type: 'buckets', buckets }));
  driver.run().then(
    (totals) => post({ type: 'done', totals }),
    (err: Error) => post({ type: 'failed', message: err.message }),
  );
});
