/**
 * Servers under test run as child processes, never inside the process that generates load. A
 * server is ready when it has printed `listening on http://127.0.0.1:<port>` on stdout and, when
 * it has one, its readiness path answers 200. Stopping is SIGTERM, then SIGKILL after a grace
 * period. Output is drained continuously (a full pipe would stall the server) and the tail of
 * stderr is kept to explain a failed start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ServerCommand {
  command: string;
  /** Arguments for a server that must listen on `port`. */
  args: (port: number) => string[];
  cwd?: string;
  env?: Record<string, string>;
  /** A GET path that answers 200 once the server can take traffic (polled after the listening line). */
  readyPath?: string;
  /** How long to wait for the listening line and readiness. */
  startTimeoutMs?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** CPU seconds (user + system) the process has used so far; undefined where /proc is missing. */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

const LISTENING = /listening on (http:\/\/[^\s:]+:(\d+))/;
const STDERR_TAIL_CHARS = 4000;

export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export async function startServer(spec: ServerCommand): Promise<RunningServer> {
  const port = await findFreePort();
  const child = spawn(spec.command, spec.args(port), {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderrTail = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL_CHARS);
  });
  const describe = (): string => `${spec.command} ${spec.args(port).join(' ')}${stderrTail ? `\n${stderrTail.trimEnd()}` : ''}`;
  const timeoutMs = spec.startTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;

  try {
    const url = await waitForListening(child, timeoutMs, describe);
    if (spec.readyPath) await waitForReady(child, url + spec.readyPath, deadline, describe);
    const listeningPort = Number(new URL(url).port);
    return {
      url,
      port: listeningPort,
      pid: child.pid!,
      cpuSeconds: () => readCpuSeconds(child.pid!),
      stop: () => stopChild(child),
    };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

function waitForListening(child: ChildProcess, timeoutMs: number, describe: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => fail(new Error(`no "listening on" line within ${timeoutMs} ms from: ${describe()}`)), timeoutMs);
    const onData = (text: string): void => {
      buffered += text;
      const match = LISTENING.exec(buffered);
      if (!match) {
        buffered = buffered.slice(-500);
        return;
      }
      cleanup();
      // Keep draining stdout so a chatty server never blocks on a full pipe.
      child.stdout!.resume();
      resolve(match[1]!);
    };
    const onExit = (code: number | null, signal: string | null): void => fail(new Error(`server exited (${signal ?? code}) before listening: ${describe()}`));
    const onError = (err: Error): void => fail(new Error(`cannot start ${describe()}: ${err.message}`));
    function fail(err: Error): void {
      cleanup();
      reject(err);
    }
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

async function waitForReady(child: ChildProcess, url: string, deadline: number, describe: () => string): Promise<void> {
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited before ready: ${describe()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready in time (${last}): ${describe()}`);
}

function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** utime + stime from /proc/<pid>/stat (fields 14 and 15, after the parenthesised command name). */
function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux that Node supports. */
const CLOCK_TICKS_PER_SECOND = 100;
