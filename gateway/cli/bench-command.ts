/**
 * `switchyard bench`: load-test any HTTP or WebSocket endpoint from this machine, open loop
 * (`--rate`, `--stages`, `--sweep`, `--search`) or closed loop (`-c`), on the generator's own
 * engine (bench/engine, docs/bench.md). This file only declares the options; the engine and its
 * dependencies load when `bench` runs, so a production install that serves never loads them.
 *
 * Exit code: 0 when every run answered without errors and on schedule (and met `--slo`), 1
 * otherwise, 2 for bad options.
 */
import { InvalidArgumentError, type Command } from 'commander';
// Type-only: nothing of bench/ loads until the command runs.
import type { BenchCommandOptions, BenchOutput } from '../../bench/engine/command.js';

export type { BenchCommandOptions, BenchOutput };
export type { BenchReport } from '../../bench/engine/report.js';

export async function runBenchCommand(opts: BenchCommandOptions, io: BenchOutput = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const { runBench, UsageError } = await import('../../bench/engine/command.js');
  try {
    return await runBench(opts, io);
  } catch (err) {
    io.stderr.write(`switchyard bench: ${(err as Error).message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number of seconds');
  return n;
}

interface CliOptions extends Omit<BenchCommandOptions, 'headers'> {
  header: string[];
}

export function registerBenchCommand(program: Command): Command {
  return program
    .command('bench')
    .description('load-test an endpoint: open loop with corrected latency, closed loop, stages, sweeps, SLO search, comparisons, streams')
    .requiredOption('--url <url>', 'endpoint URL, e.g. http://127.0.0.1:8080/inference/echo')
    .option('--compare <url>', 'a second target, measured alternately with --url; prints ratios with their spread')
    .option('-r, --rate <n>', 'open loop: requests per second, sent on schedule whatever the server does', positiveNumber)
    .option('--arrival <process>', 'open loop arrivals: constant, poisson or gamma:<cv>', 'constant')
    .option('--max-connections <n>', 'open loop: connections opened as the schedule needs them, at most this many', positiveInteger, 1000)
    .option('--stages <list>', 'open loop ramps, e.g. 10s:500,20s:2000,10s:0 (each stage ramps to its rate)')
    .option('--sweep <range>', 'open loop rate series, e.g. 500..8000x8 (8 evenly spaced rates, --duration each)')
    .option('--slo <terms>', 'objective, e.g. p99=50ms,ttft_p99=200ms[,errors=1%]: reports goodput and whether it held')
    .option('--search', 'find the highest rate that meets --slo (doubling, then bisection)')
    .option('-c, --connections <n>', 'closed loop: concurrent connections (with --ws: sockets)', positiveInteger)
    .option('-d, --duration <s>', 'seconds per run', positiveNumber, 10)
    .option('-w, --warmup <s>', 'seconds of load before measuring (dropped)', seconds, 0)
    .option('--timeout <s>', 'seconds before an unanswered request is a timeout', positiveNumber, 10)
    .option('--rounds <n>', 'with --compare: rounds, each measuring both targets', positiveInteger, 3)
    .option('--workers <n>', 'load-generating threads (default: one per spare core; 0: the load runs on the main thread)', nonNegativeInteger)
    .option('--seed <n>', 'seed of the random arrivals', positiveInteger)
    .option('-b, --body <file>', 'file holding the request body (JSON); the method defaults to POST with one')
    .option('-m, --method <method>', 'HTTP method')
    .option('-H, --header <header>', 'request header "Name: value" (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--stream', 'ask for a streamed answer ("stream": true) and time its chunks')
    .option('--sse', 'ask for Server-Sent Events (Accept: text/event-stream) and time each event')
    .option('--ws', 'send the requests over WebSocket instead of HTTP')
    .option('--inflight <n>', 'requests in flight per WebSocket', positiveInteger, 1)
    .option('--json', 'print the report as JSON (schema switchyard-bench/2, docs/bench.md)')
    .option('--report <file>', 'write a self-contained HTML report')
    .action(async (o: CliOptions) => {
      const { header, ...rest } = o;
      process.exitCode = await runBenchCommand({ ...rest, headers: header });
    });
}
