/** A load-generating thread: runs one plan at a time for the main thread (engine.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { LoadDriver } from './driver.js';
import type { EngineMessage, WorkerMessage } from './totals.js';

const { index, workers } = workerData as { index: number; workers: number };
const port = parentPort!;
const post = (message: WorkerMessage): void => port.postMessage(message);

post({ type: 'ready' });

let driver: LoadDriver | undefined;

// A plan comes in two steps: its connections are warmed, then it runs from a common start instant.
port.on('message', (message: EngineMessage) => {
  if (message.type === 'warm') {
    const warming = new LoadDriver(message.plan, index, workers, (buckets) => post({ type: 'buckets', buckets }));
    driver = warming;
    warming.warm().then(
      () => post({ type: 'warmed' }),
      (err: Error) => post({ type: 'failed', message: err.message }),
    );
    return;
  }
  const running = driver!;
  driver = undefined;
  running.run(message.startAt).then(
    (totals) => post({ type: 'done', totals }),
    (err: Error) => post({ type: 'failed', message: err.message }),
  );
});
