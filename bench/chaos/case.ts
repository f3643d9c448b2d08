/**
 * One hostile case of `npm run bench:chaos`: the endpoints it needs, what should happen, and the
 * attack itself, which returns what it observed. The runner (bench/chaos.ts) starts a fresh
 * gateway process for each case, measures its RSS and other clients' latency around the attack,
 * and reports. A new case is a module in this folder, listed in index.ts.
 */
import WebSocket from 'ws';

export interface ChaosContext {
  /** http://127.0.0.1:<port> of the gateway under attack. */
  url: string;
  /** Its port, for attacks on a raw socket. */
  port: number;
  /** The endpoint the attack and the other clients share. */
  endpoint: string;
  /** Ends when the runner's time for the attack is up. */
  signal: AbortSignal;
}

export interface ChaosCase {
  name: string;
  /** What should happen, in words, with the target. */
  expected: string;
  /** Extra endpoint fields for the shared endpoint (merged over the runner's defaults). */
  endpoint?: Record<string, unknown>;
  /** More endpoints beside the shared one, by name (each gets the runner's predictor and output folder unless it says otherwise). */
  endpoints?: Record<string, Record<string, unknown>>;
  /** The gateway is taken as started when this answers 200 (default /readyz; an endpoint that never starts needs /healthz). */
  readyPath?: string;
  /** Starts what the gateway needs before it starts; resolves with top-level config fields (e.g. `cluster`). */
  prepare?(): Promise<Record<string, unknown>>;
  /** Stops what `prepare` started. */
  dispose?(): Promise<void>;
  /** Extra server fields. */
  server?: Record<string, unknown>;
  /** How long the attack lasts (the other clients are measured meanwhile). */
  durationMs: number;
  /** Runs the attack; resolves with what was observed (counts, codes). */
  run(ctx: ChaosContext): Promise<string>;
}

/** A WebSocket to the case's endpoint, open (no compression: the bytes the gateway holds are the bytes sent). */
export async function openEndpointSocket(url: string, endpoint: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/inference/${endpoint}`, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}
