/**
 * The options of `switchyard bench`, declared once as data: gateway/cli/bench-command.ts registers
 * them with commander for the full CLI, and `parseBenchArgs` reads them with node's own parseArgs
 * for bench-main.ts. Loading commander costs a load generator about 35 ms of CPU per run (a few
 * percent of a short run's whole-process CPU), so a plain, valid command line is read without it;
 * anything else (`--help`, an unknown or invalid option, a missing --url) goes to commander, whose
 * help and messages stay the only ones.
 *
 * Validators throw errors commander recognises as invalid arguments (its `code`), so no value of
 * commander is loaded here.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { BenchCommandOptions } from '../../bench/engine/command.js';

export interface BenchOptionSpec {
  /** commander's flags: '-d, --duration <s>'; a `<value>` makes it take one. */
  flags: string;
  description: string;
  /** Reads a value; `previous` is the value so far (the default, or what an earlier occurrence gave). */
  parse?: (value: string, previous: unknown) => unknown;
  default?: unknown;
  required?: boolean;
}

function invalid(message: string): Error {
  return Object.assign(new Error(message), { code: 'commander.invalidArgument', exitCode: 1 });
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw invalid('must be a positive integer');
  return n;
}

export function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw invalid('must be a non-negative integer');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw invalid('must be a positive number');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw invalid('must be a number of seconds');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const BENCH_OPTIONS: readonly BenchOptionSpec[] = [
  { flags: '--url <url>', description: 'endpoint URL, e.g. http://127.0.0.1:8080/inference/echo', required: true },
  { flags: '--compare <url>', description: 'a second target, measured alternately with --url; prints ratios with their spread' },
  { flags: '-r, --rate <n>', description: 'open loop: requests per second, sent on schedule whatever the server does', parse: positiveNumber },
  { flags: '--arrival <process>', description: 'open loop arrivals: constant, poisson or gamma:<cv>', default: 'constant' },
  { flags: '--max-connections <n>', description: 'open loop: connections opened as the schedule needs them, at most this many', parse: positiveInteger, default: 1000 },
  { flags: '--stages <list>', description: 'open loop ramps, e.g. 10s:500,20s:2000,10s:0 (each stage ramps to its rate)' },
  { flags: '--sweep <range>', description: 'open loop rate series, e.g. 500..8000x8 (8 evenly spaced rates, --duration each)' },
  { flags: '--slo <terms>', description: 'objective, e.g. p99=50ms,ttft_p99=200ms[,errors=1%]: reports goodput and whether it held' },
  { flags: '--search', description: 'find the highest rate that meets --slo (doubling, then bisection)' },
  { flags: '-c, --connections <n>', description: 'closed loop: concurrent connections (with --ws: sockets)', parse: positiveInteger },
  { flags: '-d, --duration <s>', description: 'seconds per run', parse: positiveNumber, default: 10 },
  { flags: '-w, --warmup <s>', description: 'seconds of load before measuring (dropped)', parse: seconds, default: 0 },
  { flags: '--timeout <s>', description: 'seconds before an unanswered request is a timeout', parse: positiveNumber, default: 10 },
  { flags: '--rounds <n>', description: 'with --compare: rounds, each measuring both targets', parse: positiveInteger, default: 3 },
  { flags: '--workers <n>', description: 'load-generating threads (default: one per spare core; 0: the load runs on the main thread)', parse: nonNegativeInteger },
  { flags: '--seed <n>', description: 'seed of the random arrivals', parse: positiveInteger },
  { flags: '-b, --body <file>', description: 'file holding the request body (JSON); the method defaults to POST with one' },
  { flags: '-m, --method <method>', description: 'HTTP method' },
  { flags: '-H, --header <header>', description: 'request header "Name: value" (repeatable)', parse: (value, previous) => collect(value, previous as string[]), default: [] },
  { flags: '--stream', description: 'ask for a streamed answer ("stream": true) and time its chunks' },
  { flags: '--sse', description: 'ask for Server-Sent Events (Accept: text/event-stream) and time each event' },
  { flags: '--ws', description: 'send the requests over WebSocket instead of HTTP' },
  { flags: '--inflight <n>', description: 'requests in flight per WebSocket', parse: positiveInteger, default: 1 },
  { flags: '--json', description: 'print the report as JSON (schema switchyard-bench/2, docs/bench.md)' },
  { flags: '--report <file>', description: 'write a self-contained HTML report' },
];

interface Parsed {
  long: string;
  short: string | undefined;
  takesValue: boolean;
  /** commander's attribute name: --max-connections → maxConnections. */
  key: string;
}

function parseFlags(flags: string): Parsed {
  const match = /^(?:-(\w), )?--([\w-]+)( <[^>]+>)?$/.exec(flags);
  if (!match) throw new Error(`bench option flags not understood: ${flags}`);
  return { short: match[1], long: match[2]!, takesValue: match[3] !== undefined, key: match[2]!.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) };
}

/** The options as commander would hand them to the action (header still a list), or undefined where commander must answer. */
export function parseBenchArgs(args: readonly string[]): (Omit<BenchCommandOptions, 'headers'> & { header: string[] }) | undefined {
  const specs = BENCH_OPTIONS.map((spec) => ({ spec, ...parseFlags(spec.flags) }));
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const { long, short, takesValue } of specs) {
    options[long] = { type: takesValue ? 'string' : 'boolean', multiple: takesValue, ...(short ? { short } : {}) };
  }
  let values: Record<string, string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }) as { values: Record<string, string[] | boolean | undefined> });
  } catch {
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const { spec, long, key, takesValue } of specs) {
    const given = values[long];
    if (!takesValue) {
      if (given === true) out[key] = true;
      continue;
    }
    const list = (given as string[] | undefined) ?? [];
    if (list.length === 0) {
      if (spec.required) return undefined;
      if (spec.default !== undefined) out[key] = spec.default;
      continue;
    }
    try {
      // commander keeps the last value of an option given twice, or folds them all with its parser.
      let value: unknown = spec.default;
      for (const one of list) value = spec.parse ? spec.parse(one, value) : one;
      out[key] = value;
    } catch {
      return undefined;
    }
  }
  return out as Omit<BenchCommandOptions, 'headers'> & { header: string[] };
}
