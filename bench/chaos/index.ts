/** The cases `npm run bench:chaos` replays, in order. Add a case: a module here, listed below. */
import type { ChaosCase } from './case.js';
import { largeBodies } from './large-bodies.js';
import { largeResults } from './large-results.js';
import { pausedHttpStreams } from './paused-http-streams.js';
import { pausedWsReader } from './paused-ws-reader.js';
import { pausedWsUnary } from './paused-ws-unary.js';

export const CHAOS_CASES: ChaosCase[] = [pausedWsReader, pausedWsUnary, pausedHttpStreams, largeBodies, largeResults];
