/**
 * `npm run bench`: every scenario measured against its baselines in the same run, each server a
 * child process on 127.0.0.1, load generated from this process. Targets alternate order between
 * repetitions (a slow neighbour or a warming CPU does not always hit the same server), and each
 * row reports the median of its repetitions. Results go to bench/results/latest.{json,md,svg}.
 */
import { parseArgs } from 'node:util';
import { relative } from 'node:path';
import { measureBytes } from './lib/bytes-load.js';
import { measureHttp, type HttpLoadResult } from './lib/http-load.js';
import { measureSerial } from './lib/serial-load.js';
import { measureWs, type WsLoadResult } from './lib/ws-load.js';
import { startServer, type RunningServer } from './lib/processes.js';
import { SERVERS, repositoryRoot, type ServerId } from './lib/servers.js';
import { describeMachine, renderMarkdown, summarizeScenario, writeResults, type BenchRun, type ScenarioResult, type Settings, type TargetResult } from './lib/report.js';
import { SCENARIOS, type Scenario, type Target } from './scenarios/index.js';

const USAGE = `Usage: node dist/bench/run.js [options]

  --scenarios <a,b>   scenarios to run (default: all; --list shows them)
  --duration <s>      measured seconds per target and repetition (default 10; --quick 3)
  --warmup <s>        warm-up seconds before each measurement (default 3; --quick 1)
  --connections <n>   concurrent connections (WebSocket: sockets) (default 100)
  --reps <n>          repetitions, servers alternating; the median is reported (default 3; --quick 1)
  --quick             short settings for a smoke run
  --out <dir>         where latest.{json,md,svg} go (default bench/results)
  --list              list scenarios and exit`;

interface Options extends Settings {
  scenarios: Scenario[];
  out: string;
}

function parseOptions(argv: string[]): Options | 'list' | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      reps: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  if (values.list) return 'list';
  const quick = values.quick === true;
  const names = values.scenarios?.split(',').map((s) => s.trim()).filter(Boolean);
  const scenarios = names ? names.map(findScenario) : [...SCENARIOS];
  return {
    scenarios,
    durationS: positiveNumber('--duration', values.duration, quick ? 3 : 10),
    warmupS: positiveNumber('--warmup', values.warmup, quick ? 1 : 3, true),
    connections: positiveInteger('--connections', values.connections, 100),
    reps: positiveInteger('--reps', values.reps, quick ? 1 : 3),
    out: values.out ?? `${repositoryRoot}bench/results`,
  };
}

function findScenario(name: string): Scenario {
  const found = SCENARIOS.find((s) => s.name === name);
  if (!found) throw new Error(`--scenarios: no scenario named "${name}" (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  return found;
}

function positiveNumber(flag: string, text: string | undefined, fallback: number, zeroAllowed = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) throw new Error(`${flag} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number (got "${text}")`);
  return value;
}

function positiveInteger(flag: string, text: string | undefined, fallback: number): number {
  const value = positiveNumber(flag, text, fallback);
  if (!Number.isInteger(value)) throw new Error(`${flag} must be a positive integer (got "${text}")`);
  return value;
}

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

/** Servers running right now, so an interrupted run does not leave them behind. */
const running = new Set<RunningServer>();

/**
 * Before a target's first measurement: wait until its endpoint gives the right answer. Readiness is
 * per endpoint (a gateway whose other endpoints are still loading, or broken, can still be measured
 * on this one), so a 5xx or a refused connection is retried until the deadline; a 2xx with the
 * wrong body fails at once.
 *
 * Checking every body costs the load generator about half its throughput, which would cap the
 * fastest servers: bodies are checked here and throughout warm-up, not in the measured run.
 */
async function awaitRightAnswer(target: Target, server: RunningServer, timeoutMs = 60_000): Promise<void> {
  const load = target.load;
  if (load.kind !== 'http') return;
  const method = load.method ?? (load.body === undefined ? 'GET' : 'POST');
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(server.url + load.path, {
        method,
        headers: { ...(load.body === undefined ? {} : { 'content-type': 'application/json' }), ...load.headers },
        ...(load.body === undefined ? {} : { body: load.body }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = await res.text();
      if (res.status >= 200 && res.status < 300) {
        if (load.verifyBody && !load.stream && !load.verifyBody(body)) throw new Error(`${method} ${load.path} answered an unexpected body: ${body.slice(0, 200)}`);
        return;
      }
      last = `${res.status} ${body.slice(0, 200)}`;
      if (res.status < 500) break;
    } catch (err) {
      if ((err as Error).message.includes('unexpected body')) throw err;
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${method} ${load.path} never answered 2xx (last: ${last})`);
}

async function measureTarget(target: Target, server: RunningServer, settings: Settings, durationS: number, verify: boolean): Promise<HttpLoadResult | WsLoadResult> {
  const load = target.load;
  if (load.kind === 'ws') {
    return measureWs({
      url: server.url.replace(/^http/, 'ws') + load.path,
      sockets: settings.connections,
      inFlightPerSocket: load.inFlightPerSocket,
      durationS,
      exchange: load.exchange,
    });
  }
  if (load.oneAtATime) {
    return measureSerial({ url: server.url + load.path, method: load.method, headers: load.headers, body: load.body, durationS, verifyBody: verify ? load.verifyBody : undefined });
  }
  if (load.largeBodies) {
    return measureBytes({
      url: server.url + load.path,
      method: load.method,
      headers: load.headers,
      body: load.body,
      connections: settings.connections,
      durationS,
      verifyBody: verify ? load.verifyBody : undefined,
    });
  }
  return measureHttp({
    url: server.url + load.path,
    method: load.method,
    headers: load.headers,
    body: load.body,
    connections: settings.connections,
    durationS,
    verifyBody: verify ? load.verifyBody : undefined,
    stream: load.stream,
  });
}

/** Rotates the order by one place per repetition. */
function orderFor<T>(items: readonly T[], rep: number): T[] {
  const shift = items.length === 0 ? 0 : rep % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

async function runScenario(scenario: Scenario, runSettings: Settings): Promise<ScenarioResult> {
  const settings = scenario.connections === undefined ? runSettings : { ...runSettings, connections: scenario.connections };
  const results = new Map<Target, TargetResult>(
    scenario.targets.map((t) => [t, { name: t.name, server: t.server, serverDescription: SERVERS[t.server].description, status: 'measured', reps: [] }]),
  );
  const servers = new Map<ServerId, RunningServer>();
  const markAll = (serverId: ServerId, status: 'skipped' | 'failed', reason: string): void => {
    for (const [target, result] of results) {
      if (target.server === serverId) Object.assign(result, { status, reason });
    }
  };
  try {
    for (const serverId of new Set(scenario.targets.map((t) => t.server))) {
      const spec = SERVERS[serverId];
      const reason = spec.unavailable();
      if (reason) {
        log(`${scenario.name}: skipping ${serverId}: ${reason}`);
        markAll(serverId, 'skipped', reason);
        continue;
      }
      try {
        const server = await startServer(spec.command);
        running.add(server);
        servers.set(serverId, server);
      } catch (err) {
        log(`${scenario.name}: ${serverId} did not start: ${(err as Error).message}`);
        markAll(serverId, 'failed', (err as Error).message);
      }
    }
    for (let rep = 0; rep < settings.reps; rep++) {
      const order = orderFor(
        scenario.targets.filter((t) => results.get(t)!.status === 'measured'),
        rep,
      );
      for (const [position, target] of order.entries()) {
        const result = results.get(target)!;
        if (result.status !== 'measured') continue;
        const server = servers.get(target.server)!;
        try {
          if (rep === 0) await awaitRightAnswer(target, server);
          if (settings.warmupS > 0) {
            const warmup = await measureTarget(target, server, settings, settings.warmupS, true);
            if (warmup.errors.mismatches > 0) throw new Error(`${warmup.errors.mismatches} answers during warm-up were not the expected body`);
          }
          const cpuBefore = server.cpuSeconds();
          const measured = await measureTarget(target, server, settings, settings.durationS, false);
          const cpuAfter = server.cpuSeconds();
          const serverCpuPercent = cpuBefore !== undefined && cpuAfter !== undefined ? Math.round(((cpuAfter - cpuBefore) / measured.durationS) * 100) : undefined;
          result.reps.push({ rep, position, ...(serverCpuPercent === undefined ? {} : { serverCpuPercent }), result: measured });
          log(
            `${scenario.name} rep ${rep + 1}/${settings.reps} ${target.name}: ${Math.round(measured.rps)} req/s, ` +
              `p50 ${measured.latency.p50} ms, p99 ${measured.latency.p99} ms, errors ${measured.errors.total}`,
          );
        } catch (err) {
          log(`${scenario.name} ${target.name} failed: ${(err as Error).message}`);
          Object.assign(result, { status: 'failed', reason: (err as Error).message });
        }
      }
    }
  } finally {
    for (const server of servers.values()) {
      await server.stop();
      running.delete(server);
    }
  }
  return summarizeScenario({
    name: scenario.name,
    description: scenario.description,
    baseline: scenario.baseline,
    ...(scenario.connections === undefined ? {} : { connections: scenario.connections }),
    ...(scenario.compare === undefined ? {} : { compare: scenario.compare }),
    targets: [...results.values()],
  });
}

async function main(argv: string[]): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (options === 'list') {
    for (const s of SCENARIOS) process.stdout.write(`${s.name}\t${s.description}\n\t${s.targets.map((t) => t.name).join(', ')} (ratios against ${s.baseline})\n`);
    return 0;
  }
  const { scenarios, out, ...settings } = options;
  const startedAt = new Date().toISOString();
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) results.push(await runScenario(scenario, settings));
  const run: BenchRun = {
    command: ['node', relative(process.cwd(), process.argv[1]!) || process.argv[1], ...argv].join(' '),
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: describeMachine(),
    settings,
    scenarios: results,
  };
  const paths = writeResults(run, out);
  process.stdout.write(renderMarkdown(run) + '\n');
  log(`wrote ${paths.md}, ${paths.json}, ${paths.svg}`);
  return results.some((s) => s.targets.some((t) => t.status === 'failed')) ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping servers`);
    void Promise.allSettled([...running].map((s) => s.stop())).finally(() => process.exit(130));
  });
}

process.exitCode = await main(process.argv.slice(2));
