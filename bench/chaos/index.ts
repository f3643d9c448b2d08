/** The cases `npm run bench:chaos` replays, in order. Add a case: a module here, listed below. */
import type { ChaosCase } from './case.js';
import { crashLoop } from './crash-loop.js';
import { failingSetup } from './failing-setup.js';
import { httpDoor } from './http-door.js';
import { largeBodies } from './large-bodies.js';
import { largeResults } from './large-results.js';
import { natsDown } from './nats-down.js';
import { pausedHttpStreams } from './paused-http-streams.js';
import { pausedWsReader } from './paused-ws-reader.js';
import { pausedWsUnary } from './paused-ws-unary.js';
import { unhandledRejection } from './unhandled-rejection.js';
import { wedgedReplica } from './wedged-replica.js';

export const CHAOS_CASES: ChaosCase[] = [
  pausedWsReader,
  pausedWsUnary,
  pausedHttpStreams,
  largeBodies,
  largeResults,
  wedgedReplica,
  crashLoop,
  failingSetup,
  unhandledRejection,
  httpDoor,
  natsDown,
];
