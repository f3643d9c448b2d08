/**
 * The server of the `remote` scenario: a nats-server and one node agent as child processes, and
 * in this process a gateway whose echo endpoint lives only on that node, so every request crosses
 * NATS twice. The gateway runs here, not in a third child, so the harness's "server CPU" column is
 * the gateway's, as for the local row (the node agent and nats-server are not counted).
 *
 *   node dist/bench/lib/remote-gateway.js <port>
 *
 * Prints `listening on http://127.0.0.1:<port>` once the echo replica is ready on the node; SIGTERM
 * stops the gateway, the node and nats-server, and removes their files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { validateConfig } from '../../gateway/config/load.js';
import { Gateway } from '../../gateway/gateway.js';
import { findFreePort } from './processes.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(DIST, 'gateway/cli/main.js');
const ECHO = path.join(DIST, 'examples/echo/predictor.js');
const START_TIMEOUT_MS = 30_000;

/** Spawns `command` and resolves once its output matches `ready`; rejects if it exits first. */
function startChild(command: string, args: string[], ready: RegExp, what: string): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    // Keep reading after ready: a full pipe would stall the child.
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready:\n${output}`));
    });
  });
}

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? 0);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-remote-'));
  const children: ChildProcess[] = [];
  let gateway: Gateway | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await gateway?.shutdown(2_000).catch(() => undefined);
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.once('SIGTERM', () => void stop(0));
  process.once('SIGINT', () => void stop(0));

  try {
    const natsPort = await findFreePort();
    const natsConfig = path.join(dir, 'nats.conf');
    writeFileSync(natsConfig, `listen: "127.0.0.1:${natsPort}"\njetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }\n`);
    children.push(await startChild('nats-server', ['-c', natsConfig], /Server is ready/, 'nats-server'));
    const nats = `nats://127.0.0.1:${natsPort}`;
    const nodeArgs = [CLI, 'node', '--nats', nats, '--region', 'bench', '--name', 'bench-node', '--devices', 'cpu', '--work-dir', path.join(dir, 'node')];
    children.push(await startChild(process.execPath, nodeArgs, /"msg":"node up"/, 'the node agent'));
    const config = validateConfig({
      server: { host: '127.0.0.1', port, region: 'bench', log_level: 'warn' },
      cluster: { nats },
      // The same endpoint as the demo's echo (`switchyard serve --demo`), placed on the node.
      endpoints: { echo: { predictor: ECHO, placement: 'remote', replicas: 1, max_concurrency: 256 } },
    });
    gateway = await Gateway.start(config, { logger: pino({ level: 'warn' }, pino.destination(2)) });
    if (!(await gateway.whenReady(START_TIMEOUT_MS))) throw new Error(`the echo replica never became ready: ${JSON.stringify(gateway.readiness())}`);
    console.log(`switchyard (echo on a node agent) listening on http://127.0.0.1:${gateway.port}`);
  } catch (err) {
    console.error(`remote-gateway: ${(err as Error).message}`);
    await stop(1);
  }
}

await main();
