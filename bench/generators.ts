/**
 * `npm run bench:generators`: the load generators themselves, on the same target (raw uWS answering
 * a small POST inline, a child process): `switchyard bench`, wrk (Debian's, C, one thread),
 * autocannon (node), and the floor of a node generator (bench/baselines/node-floor-client.ts: a
 * socket that writes a prebuilt request per answer and parses nothing). For each: the rate it achieved with the same connections, and its CPU per
 * request (the generator process's user + system CPU time / successful requests, start-up
 * included, read with the shell's `times`). Requests per CPU-second is "rate per core".
 *
 * `switchyard bench` also reports its own CPU over the run alone (start-up, summary and exit
 * excluded: `generator.cpuS`), reported beside; wrk's start-up and exit are a few milliseconds.
 *
 * `switchyard bench` runs closed loop (-c, like the others) and open loop at 80% of the rate it
 * reached closed loop: the open-loop row is what keeping a schedule costs per request. Each
 * `switchyard bench` run sits between two wrk runs, and its ratio to wrk is also given paired: to
 * the mean of those two (the machine's speed drifts from run to run), median over repetitions.
 * Medians of each generator are reported too. Runs last 10 s unless `--duration` says. The target
 * shares this machine's cores, so the achieved rates are the target's limit as much as the
 * generator's; CPU per request is the generator's own. Writes bench/results/generators.{json,md}.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from './lib/processes.js';
import { repositoryRoot } from './lib/servers.js';
import { describeMachine, median } from './lib/report.js';
import { defaultWorkers } from './engine/engine.js';

const BODY = '{"text":"hello"}';
const WRK = process.env.BENCH_WRK ?? '/usr/bin/wrk';
const DIST = `${repositoryRoot}dist/`;

interface Measurement {
  generator: string;
  mode: 'closed' | 'open';
  rps: number;
  requests: number;
  cpuSeconds: number;
  cpuUsPerRequest: number;
  requestsPerCpuSecond: number;
  /** Open loop: the rate asked for and whether the schedule was kept. */
  offered?: number;
  kept?: boolean;
  p50Ms?: number;
  p99Ms?: number;
  /** switchyard bench: its own CPU over the run alone (start-up, summary and exit excluded), as it reports it. */
  inRunCpuSeconds?: number;
  inRunRequestsPerCpuSecond?: number;
}

/**
 * Measurement plus the repetition it belongs to. A `switchyard bench` row also holds its ratio to
 * the wrk runs just before and just after it (their mean requests per CPU-second): the machine's
 * speed drifts within a repetition, and a ratio to the runs that bracket it cancels most of that.
 */
type Row = Measurement & { rep: number; vsWrk?: number; inRunVsWrk?: number };

interface Run {
  stdout: string;
  cpuSeconds: number;
}

/** Runs a command under bash and reads its children's CPU time from `times`. */
function runMeasured(command: string[], timeoutMs: number): Promise<Run> {
  const quoted = command.map((c) => `'${c.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${quoted} > "$OUT"; status=$?; times >&2; exit $status`], {
      env: { ...process.env, OUT: outFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', async () => {
      clearTimeout(timer);
      const lines = stderr.trim().split('\n');
      const children = lines[lines.length - 1] ?? '';
      const match = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(children);
      if (!match) return reject(new Error(`no CPU times from: ${stderr.slice(-500)}`));
      const cpuSeconds = Number(match[1]) * 60 + Number(match[2]) + Number(match[3]) * 60 + Number(match[4]);
      const { readFileSync } = await import('node:fs');
      resolve({ stdout: readFileSync(outFile, 'utf8'), cpuSeconds });
    });
  });
}

let outFile = '';

function measurement(generator: string, mode: 'closed' | 'open', requests: number, seconds: number, cpuSeconds: number, extra: Partial<Measurement> = {}): Measurement {
  return {
    generator,
    mode,
    rps: Math.round(requests / seconds),
    requests,
    cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
    cpuUsPerRequest: Math.round((cpuSeconds / requests) * 1e6 * 100) / 100,
    requestsPerCpuSecond: Math.round(requests / cpuSeconds),
    ...extra,
  };
}

async function wrk(url: string, connections: number, seconds: number, script: string): Promise<Measurement> {
  const run = await runMeasured([WRK, '-t1', `-c${connections}`, `-d${seconds}s`, '-s', script, url], (seconds + 30) * 1000);
  const total = /(\d+) requests in ([\d.]+)s/.exec(run.stdout);
  if (!total) throw new Error(`wrk said: ${run.stdout}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(run.stdout)?.[1] ?? 0);
  return measurement('wrk', 'closed', Number(total[1]) - non2xx, Number(total[2]), run.cpuSeconds);
}

async function autocannon(url: string, connections: number, seconds: number): Promise<Measurement> {
  const bin = `${repositoryRoot}node_modules/autocannon/autocannon.js`;
  const run = await runMeasured([process.execPath, bin, '-c', String(connections), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json', '-b', BODY, '--json', url], (seconds + 30) * 1000);
  const result = JSON.parse(run.stdout) as { '2xx': number; duration: number };
  return measurement('autocannon', 'closed', result['2xx'], result.duration, run.cpuSeconds);
}

async function nodeFloor(url: string, connections: number, seconds: number): Promise<Measurement> {
  const run = await runMeasured([process.execPath, `${DIST}bench/baselines/node-floor-client.js`, url, String(connections), String(seconds)], (seconds + 30) * 1000);
  const result = JSON.parse(run.stdout) as { requests: number; seconds: number };
  return measurement(NODE_FLOOR, 'closed', result.requests, result.seconds, run.cpuSeconds);
}

const NODE_FLOOR = 'node floor (writes and counts only)';

async function switchyard(url: string, bodyFile: string, seconds: number, load: string[]): Promise<Measurement> {
  // Its default load threads (defaultWorkers): what a user of this machine gets.
  const run = await runMeasured([process.execPath, `${repositoryRoot}bin/switchyard.js`, 'bench', '--url', url, '-b', bodyFile, '-d', String(seconds), '--json', ...load], (seconds + 30) * 1000);
  const report = JSON.parse(run.stdout) as {
    runs: Array<{ result: { requests: { ok: number }; durationS: number; mode: 'open' | 'closed'; schedule: { kept: boolean }; offered?: { rate: number }; latency: { corrected: { p50: number; p99: number } }; generator: { cpuS: number } } }>;
  };
  const r = report.runs[0]!.result;
  return measurement(r.mode === 'open' ? 'switchyard bench (open loop)' : 'switchyard bench', r.mode, r.requests.ok, r.durationS, run.cpuSeconds, {
    ...(r.offered ? { offered: r.offered.rate, kept: r.schedule.kept } : {}),
    p50Ms: r.latency.corrected.p50,
    p99Ms: r.latency.corrected.p99,
    inRunCpuSeconds: r.generator.cpuS,
    inRunRequestsPerCpuSecond: Math.round(r.requests.ok / r.generator.cpuS),
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { duration: { type: 'string' }, connections: { type: 'string' }, reps: { type: 'string' }, out: { type: 'string' } } });
  // 10 s: what `switchyard bench` and wrk run when not told.
  const seconds = Number(values.duration ?? 10);
  const connections = Number(values.connections ?? 50);
  const reps = Number(values.reps ?? 3);
  const out = values.out ?? `${repositoryRoot}bench/results`;
  const folder = mkdtempSync(join(tmpdir(), 'generators-'));
  outFile = join(folder, 'stdout');
  const bodyFile = join(folder, 'body.json');
  writeFileSync(bodyFile, BODY);
  const script = join(folder, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`);
  const wrkMissing = existsSync(WRK) ? undefined : `${WRK} is missing (apt-get install -y wrk)`;
  if (wrkMissing) process.stderr.write(`skipping wrk: ${wrkMissing}\n`);

  const server = await startServer({ command: process.execPath, args: (port) => [`${DIST}bench/baselines/raw-uws.js`, String(port)], readyPath: '/readyz' });
  const url = `${server.url}/inference/echo`;
  const rows: Row[] = [];
  try {
    const closedLoop = (): Promise<Measurement> => switchyard(url, bodyFile, seconds, ['-c', String(connections)]);
    // Open loop at 80% of the rate this generator reached closed loop in this repetition: a
    // rate the target can serve, so the cost is the generator's. It gets the closed loops'
    // connection budget: at 80% of their rate it needs far fewer in steady state, and a larger cap
    // only lets a stall of this shared machine open extra connections that then keep the target
    // and the generator busier per request for the rest of the run.
    const openLoop = (): Promise<Measurement> => {
      const reached = Math.round(rows.filter((r) => r.generator === 'switchyard bench').at(-1)!.rps * 0.8);
      return switchyard(url, bodyFile, seconds, ['--rate', String(reached), '--max-connections', String(connections)]);
    };
    const wrkRun = (): Promise<Measurement> => wrk(url, connections, seconds, script);
    const autocannonRun = (): Promise<Measurement> => autocannon(url, connections, seconds);
    const floorRun = (): Promise<Measurement> => nodeFloor(url, connections, seconds);
    // Each `switchyard bench` run sits between two wrk runs; the other generators alternate ends.
    const engine = wrkMissing ? [closedLoop, openLoop] : [wrkRun, closedLoop, wrkRun, openLoop, wrkRun];
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? [...engine, autocannonRun, floorRun] : [floorRun, autocannonRun, ...engine];
      const these: Row[] = [];
      for (const one of order) {
        const m = await one();
        const row: Row = { ...m, rep };
        these.push(row);
        rows.push(row);
        const open = m.offered === undefined ? '' : ` at ${m.offered}/s offered, schedule ${m.kept ? 'kept' : 'not kept'}`;
        process.stderr.write(`rep ${rep + 1} ${m.generator}${open}: ${m.rps} req/s, ${m.cpuUsPerRequest} µs CPU per request\n`);
      }
      these.forEach((row, i) => {
        const before = these[i - 1];
        const after = these[i + 1];
        if (!row.generator.startsWith('switchyard bench') || before?.generator !== 'wrk' || after?.generator !== 'wrk') return;
        const wrkRate = (before.requestsPerCpuSecond + after.requestsPerCpuSecond) / 2;
        row.vsWrk = Math.round((row.requestsPerCpuSecond / wrkRate) * 1000) / 1000;
        if (row.inRunRequestsPerCpuSecond !== undefined) row.inRunVsWrk = Math.round((row.inRunRequestsPerCpuSecond / wrkRate) * 1000) / 1000;
      });
    }
  } finally {
    await server.stop();
    rmSync(folder, { recursive: true, force: true });
  }

  const names = [...new Set(rows.map((r) => r.generator))];
  const summary = names.map((generator) => {
    const mine = rows.filter((r) => r.generator === generator);
    const inRun = mine.flatMap((r) => (r.inRunRequestsPerCpuSecond === undefined ? [] : [r.inRunRequestsPerCpuSecond]));
    return {
      generator,
      rps: median(mine.map((r) => r.rps)),
      cpuUsPerRequest: median(mine.map((r) => r.cpuUsPerRequest)),
      requestsPerCpuSecond: median(mine.map((r) => r.requestsPerCpuSecond)),
      ...(inRun.length > 0 ? { inRunRequestsPerCpuSecond: median(inRun) } : {}),
      maxRps: Math.max(...mine.map((r) => r.rps)),
    };
  });
  const wrkRow = summary.find((s) => s.generator === 'wrk');
  const floor = summary.find((s) => s.generator === NODE_FLOOR);
  const ours = summary.find((s) => s.generator === 'switchyard bench')!;
  const open = summary.find((s) => s.generator === 'switchyard bench (open loop)')!;
  // Each run's ratio to the wrk runs that bracket it, then their median: the machine's speed drifts
  // from one run to the next, and a ratio to its neighbours cancels most of it.
  const ratios = (generator: string, key: 'vsWrk' | 'inRunVsWrk'): number[] => rows.flatMap((r) => (r.generator === generator && r[key] !== undefined ? [r[key]!] : []));
  const paired = (generator: string, key: 'vsWrk' | 'inRunVsWrk'): number => Math.round(median(ratios(generator, key)) * 100) / 100;
  const pairedRange = (generator: string): string => {
    const all = ratios(generator, 'vsWrk');
    return `${Math.min(...all).toFixed(2)}–${Math.max(...all).toFixed(2)}`;
  };
  const targets = wrkRow
    ? {
        closedVsWrkPerCore: Math.round((ours.requestsPerCpuSecond / wrkRow.requestsPerCpuSecond) * 100) / 100,
        openVsWrkPerCore: Math.round((open.requestsPerCpuSecond / wrkRow.requestsPerCpuSecond) * 100) / 100,
        // The engine's CPU over the run alone, against wrk's whole process (wrk's start-up and exit are a few ms).
        closedInRunVsWrkPerCore: Math.round((ours.inRunRequestsPerCpuSecond! / wrkRow.requestsPerCpuSecond) * 100) / 100,
        openInRunVsWrkPerCore: Math.round((open.inRunRequestsPerCpuSecond! / wrkRow.requestsPerCpuSecond) * 100) / 100,
        paired: {
          closed: paired('switchyard bench', 'vsWrk'),
          closedInRun: paired('switchyard bench', 'inRunVsWrk'),
          closedRange: pairedRange('switchyard bench'),
          open: paired('switchyard bench (open loop)', 'vsWrk'),
          openInRun: paired('switchyard bench (open loop)', 'inRunVsWrk'),
          openRange: pairedRange('switchyard bench (open loop)'),
        },
        nodeFloorVsWrkPerCore: floor ? Math.round((floor.requestsPerCpuSecond / wrkRow.requestsPerCpuSecond) * 100) / 100 : undefined,
      }
    : { skipped: wrkMissing };
  const result = {
    command: `node dist/bench/generators.js ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: describeMachine(),
    loadAverage: (await import('node:os')).loadavg().map((l) => Math.round(l * 10) / 10),
    target: 'raw uWS (bench/baselines/raw-uws.ts), POST /inference/echo {"text":"hello"}, child process on this machine',
    settings: { seconds, connections, reps, switchyardLoadThreads: defaultWorkers() },
    summary,
    targets,
    rows,
  };
  writeFileSync(`${out}/generators.json`, JSON.stringify(result, null, 2) + '\n');
  const md = [
    `# Load generators on one target`,
    '',
    `\`${result.command}\` — ${result.machine.cores} cores (${result.machine.cpu}), Node ${result.machine.node}, load average at the end ${result.loadAverage.join(' / ')}.`,
    `Target: ${result.target}. ${connections} connections, ${seconds} s per run, median of ${reps} repetitions. Each repetition runs wrk, \`switchyard bench\` closed loop, wrk, \`switchyard bench\` open loop, wrk, then autocannon and the node floor (reversed every other repetition).`,
    '',
    '| generator | req/s | CPU µs per request | requests per CPU-second | the same, in the run alone | best req/s |',
    '|---|---:|---:|---:|---:|---:|',
    ...summary.map(
      (s) =>
        `| ${s.generator} | ${s.rps.toLocaleString('en-US')} | ${s.cpuUsPerRequest} | ${s.requestsPerCpuSecond.toLocaleString('en-US')} | ${s.inRunRequestsPerCpuSecond === undefined ? '–' : s.inRunRequestsPerCpuSecond.toLocaleString('en-US')} | ${s.maxRps.toLocaleString('en-US')} |`,
    ),
    '',
    wrkRow
      ? (() => {
          const t = targets as {
            closedVsWrkPerCore: number;
            openVsWrkPerCore: number;
            closedInRunVsWrkPerCore: number;
            openInRunVsWrkPerCore: number;
            nodeFloorVsWrkPerCore?: number;
            paired: { closed: number; closedInRun: number; closedRange: string; open: number; openInRun: number; openRange: string };
          };
          return [
            `Per CPU core, against wrk (medians of the table): closed loop ${t.closedVsWrkPerCore}× (in the run alone ${t.closedInRunVsWrkPerCore}×), open loop ${t.openVsWrkPerCore}× (${t.openInRunVsWrkPerCore}×); targets ≥ 1× and ≥ 0.9×. The node floor, a client that only writes and counts: ${t.nodeFloorVsWrkPerCore ?? '–'}×.`,
            `Paired (each run's ratio to the mean of the wrk runs just before and after it, median over repetitions): closed loop ${t.paired.closed}× (in the run alone ${t.paired.closedInRun}×; runs ${t.paired.closedRange}×), open loop ${t.paired.open}× (${t.paired.openInRun}×; runs ${t.paired.openRange}×).`,
          ].join('\n');
        })()
      : `wrk skipped: ${wrkMissing}.`,
    '',
    ...(result.loadAverage[0]! > result.machine.cores
      ? [`The machine was busy with other work (load average ${result.loadAverage[0]} on ${result.machine.cores} cores): achieved rates swing between repetitions; CPU per request is the steadier number.`, '']
      : []),
    'CPU is the generator process\'s user + system time (start-up included) over its successful requests. "In the run alone" is the CPU `switchyard bench` reports for itself from the start instant to the last answer (`generator.cpuS` in its JSON): a node process\'s fixed start-up and exit (about 0.2–0.3 s) left out, where wrk\'s are a few milliseconds. The open-loop row runs `--rate` at 80% of the rate `switchyard bench` reached closed loop in the same repetition, with the same connections at most (`--max-connections`).',
    `\`switchyard bench\` runs with its default load threads: ${defaultWorkers() === 0 ? 'with one spare core or none, the load runs on its main thread' : `${defaultWorkers()} worker threads`}. wrk runs one thread (\`-t1\`).`,
    '',
  ].join('\n');
  writeFileSync(`${out}/generators.md`, md);
  process.stdout.write(md);
  return 0;
}

process.exitCode = await main();
