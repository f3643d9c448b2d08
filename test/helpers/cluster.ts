/**
 * Cluster test rigs: node agents as child processes started through the real CLI
 * (`switchyard node ...`), a gateway in this process joined to the same nats-server, and a
 * closed-loop load generator that counts every outcome. Every process started here is tracked so
 * a test's `after` can kill what is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { validateConfig } from '../../gateway/config/load.js';
import { Gateway } from '../../gateway/gateway.js';
import { repoRoot, type TestGateway } from './gateway.js';

export const CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));

/**
 * A compiled fixture copied to `dir` as an `.mjs` file. A predictor travels to a node as one file
 * and lands in the node's artifact cache, outside any package.json that says "type": "module";
 * the `.mjs` extension keeps it an ES module there on every Node version the project supports
 * (syntax detection of `.js` files only arrived in Node 20.19).
 */
export function fixtureModule(name: string, dir: string): string {
  const target = path.join(dir, `${name}.mjs`);
  copyFileSync(fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url)), target);
  return target;
}

export interface ChildProcessHandle {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

export interface NodeAgentHandle extends ChildProcessHandle {
  readonly name: string;
  /** Resolves once the agent printed that it is up; rejects if it exits first. */
  readonly up: Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Every child started by this module, to be killed by `killChildren`. */
const children = new Set<ChildProcess>();

export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcessHandle {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => output, exited };
}

export interface NodeAgentOptions {
  nats: string;
  name: string;
  region: string;
  workDir: string;
  token?: string;
  maxReplicas?: number;
  /** Extra environment, e.g. SWITCHYARD_TEST_DELAY_MS for a slow node. */
  env?: Record<string, string>;
  /** More `switchyard node` options, e.g. other credentials. */
  args?: string[];
}

export function startNodeAgent(opts: NodeAgentOptions): NodeAgentHandle {
  const args = ['node', '--nats', opts.nats, '--name', opts.name, '--region', opts.region, '--devices', 'cpu', '--work-dir', path.join(opts.workDir, opts.name)];
  if (opts.token) args.push('--token', opts.token);
  if (opts.maxReplicas) args.push('--max-replicas', String(opts.maxReplicas));
  if (opts.args) args.push(...opts.args);
  const handle = spawnCli(args, opts.env);
  const up = new Promise<void>((resolve, reject) => {
    const check = () => {
      if (handle.output().includes('"msg":"node up"')) {
        handle.child.stdout!.off('data', check);
        resolve();
      }
    };
    handle.child.stdout!.on('data', check);
    void handle.exited.then((code) => reject(new Error(`node ${opts.name} exited (${code}) before it was up:\n${handle.output()}`)));
  });
  up.catch(() => undefined);
  return {
    ...handle,
    name: opts.name,
    up,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (handle.child.exitCode === null && handle.child.signalCode === null) handle.child.kill(signal);
      await handle.exited;
    },
  };
}

/** Kills every child process this module started that is still running. */
export async function killChildren(): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** A gateway in this process, joined to the cluster at `nats`. */
export async function startClusterGateway(raw: {
  nats: string;
  token?: string;
  region: string;
  /** More `cluster:` fields (other credentials, timings). */
  cluster?: Record<string, unknown>;
  endpoints: Record<string, Record<string, unknown>>;
}): Promise<TestGateway> {
  const config = validateConfig({
    server: { host: '127.0.0.1', port: 0, log_level: 'silent', region: raw.region },
    cluster: { nats: raw.nats, ...(raw.token ? { token: raw.token } : {}), ...raw.cluster },
    endpoints: raw.endpoints,
  });
  const gateway = await Gateway.start(config, { logger: pino({ level: 'silent' }) });
  // Every replica ready, not just one per endpoint (what readiness asks), so placements are settled.
  const settled = () => [...gateway.endpoints.values()].every((ep) => ep.readyCount === ep.desired);
  try {
    await waitFor('every replica to be ready', settled, 20_000);
  } catch {
    const why = JSON.stringify(gateway.readiness());
    await gateway.shutdown(0);
    throw new Error(`gateway not ready: ${why}`);
  }
  return { gateway, url: `http://127.0.0.1:${gateway.port}`, close: () => gateway.shutdown(1000) };
}

export interface LoadOutcome {
  ok: number;
  /** Failed requests by HTTP status or, for requests that got no answer, the error's name. */
  failed: Record<string, number>;
  /** Answers of successful requests, parsed as JSON. */
  answers: unknown[];
}

export function failures(outcome: LoadOutcome): number {
  return Object.values(outcome.failed).reduce((a, b) => a + b, 0);
}

/**
 * `total` POSTs of `body` with `concurrency` in flight, each started as the previous one on its
 * lane finished. `onProgress` sees the count of finished requests after each one.
 */
export async function runLoad(opts: {
  url: string;
  total: number;
  concurrency: number;
  body: unknown;
  headers?: Record<string, string>;
  onProgress?: (finished: number) => void;
  keepAnswers?: boolean;
}): Promise<LoadOutcome> {
  const outcome: LoadOutcome = { ok: 0, failed: {}, answers: [] };
  let started = 0;
  let finished = 0;
  const body = JSON.stringify(opts.body);
  const lane = async () => {
    while (started < opts.total) {
      started++;
      let key: string | undefined;
      try {
        const res = await fetch(opts.url, { method: 'POST', headers: { 'content-type': 'application/json', ...opts.headers }, body });
        const text = await res.text();
        if (res.status === 200) {
          outcome.ok++;
          if (opts.keepAnswers) outcome.answers.push(JSON.parse(text));
        } else {
          key = String(res.status);
        }
      } catch (err) {
        key = (err as Error).name;
      }
      if (key) outcome.failed[key] = (outcome.failed[key] ?? 0) + 1;
      opts.onProgress?.(++finished);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, lane));
  return outcome;
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
