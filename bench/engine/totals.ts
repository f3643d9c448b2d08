/** What a worker thread sends back: per-second buckets while it runs, its totals at the end. */
import type { HistogramData } from './histogram.js';
import type { LoadPlan } from './plan.js';

export interface BucketReport {
  /** Whole seconds since the run's start. */
  second: number;
  /** Requests whose intended send time fell in this second. */
  scheduled: number;
  /** Requests handed to a connection in this second. */
  sent: number;
  /** Answers (ok / failed) completed in this second. */
  ok: number;
  errors: number;
  /** Latency histograms (µs) of the answers completed in this second. */
  corrected: HistogramData | undefined;
  uncorrected: HistogramData | undefined;
}

export interface WorkerTotals {
  scheduled: number;
  sent: number;
  sentInWindow: number;
  waitedForConnection: number;
  ok: number;
  good: number;
  errors: Record<string, number>;
  unsent: number;
  bytes: number;
  connectionsOpened: number;
  peakConnections: number;
  retried: number;
  streams: { complete: number; truncated: number; errorFrame: number };
  schedulerLag: HistogramData;
  sendDelay: HistogramData;
  firstChunk: HistogramData;
  firstChunkUncorrected: HistogramData;
  chunkGap: HistogramData;
  chunksPerStream: HistogramData;
  bytesPerStream: HistogramData;
}

export type WorkerMessage = { type: 'ready' } | { type: 'warmed' } | { type: 'buckets'; buckets: BucketReport[] } | { type: 'done'; totals: WorkerTotals } | { type: 'failed'; message: string };

/** From the main thread to a load thread: warm a plan's connections, then run it from `startAt`. */
export type EngineMessage = { type: 'warm'; plan: Omit<LoadPlan, 'startAt'> } | { type: 'start'; startAt: number };
