/**
 * `switchyard bench`: load-test any HTTP or WebSocket endpoint from this machine, open loop
 * (`--rate`, `--stages`, `--sweep`, `--search`) or closed loop (`-c`), on the generator's own
 * engine (bench/engine, docs/bench.md). This file only declares the options; the engine and its
 * dependencies load when `bench` runs, so a production install that serves never loads them.
 *
 * Exit code: 0 when every run answered without errors and on schedule (and met `--slo`), 1
 * otherwise, 2 for bad options.
 */
import type { Command } from 'commander';
import { BENCH_OPTIONS } from './bench-options.js';
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

export interface CliOptions extends Omit<BenchCommandOptions, 'headers'> {
  header: string[];
}

/** `action` is for tests: what the command does with its options (default: run the bench). */
export function registerBenchCommand(program: Command, action: (o: CliOptions) => Promise<void> = runFromCli): Command {
  const command = program
    .command('bench')
    .description('load-test an endpoint: open loop with corrected latency, closed loop, stages, sweeps, SLO search, comparisons, streams');
  for (const spec of BENCH_OPTIONS) {
    if (spec.required) command.requiredOption(spec.flags, spec.description);
    else if (spec.parse) command.option(spec.flags, spec.description, spec.parse, spec.default);
    else if (spec.default !== undefined) command.option(spec.flags, spec.description, spec.default as string);
    else command.option(spec.flags, spec.description);
  }
  return command.action(action);
}

async function runFromCli(o: CliOptions): Promise<void> {
  const { header, ...rest } = o;
  process.exitCode = await runBenchCommand({ ...rest, headers: header });
}
