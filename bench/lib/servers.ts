/**
 * The servers a scenario can measure: the gateway and the baselines, each with how to start it and
 * why it cannot run here (a missing build or runtime), so the harness skips it and says so instead
 * of failing the whole run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderPng } from '../../examples/image/predictor.js';
import { FILE_INPUT } from '../scenarios/file.js';
import type { ServerCommand } from './processes.js';

export interface ServerSpec {
  /** Shown in reports; stable, used as a key. */
  id: string;
  description: string;
  command: ServerCommand;
  /** Why this server cannot run on this machine, or undefined when it can. */
  unavailable(): string | undefined;
}

/** dist/bench/lib → the repository root and dist/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST = fileURLToPath(new URL('../../', import.meta.url));
/** Debian's python carries the apt-installed FastAPI; override with BENCH_PYTHON. */
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';

export const repositoryRoot = ROOT;

function nodeScript(relativeToDist: string): { path: string; unavailable: () => string | undefined } {
  const path = DIST + relativeToDist;
  return { path, unavailable: () => (existsSync(path) ? undefined : `${path} is missing (run npm run build)`) };
}

function pythonModules(modules: string[], install: string): () => string | undefined {
  let answer: string | undefined | null = null;
  return () => {
    if (answer !== null) return answer;
    const probe = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 20_000 });
    if (probe.error) answer = `${PYTHON} not found (${probe.error.message})`;
    else if (probe.status !== 0) answer = `${PYTHON} lacks ${modules.join('/')} (${install})`;
    else answer = undefined;
    return answer;
  };
}

const gatewayMain = nodeScript('gateway/cli/main.js');
const rawUws = nodeScript('bench/baselines/raw-uws.js');
const rawUwsStream = nodeScript('bench/baselines/raw-uws-stream.js');
const naivePiscina = nodeScript('bench/baselines/naive-piscina.js');
const fastifyPiscina = nodeScript('bench/baselines/fastify-piscina.js');
const remoteGateway = nodeScript('bench/lib/remote-gateway.js');
const fastapiScript = ROOT + 'bench/baselines/fastapi_echo.py';
const fastapiFileScript = ROOT + 'bench/baselines/fastapi_file.py';

/** The file scenario's PNG on disk (written once per harness process), for servers that send it from a file. */
let benchPng: string | undefined;
function benchPngFile(): string {
  if (!benchPng) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-png-'));
    benchPng = path.join(dir, 'bench.png');
    writeFileSync(benchPng, renderPng({ ...FILE_INPUT, pattern: 'noise' }));
  }
  return benchPng;
}
const APT_FASTAPI = 'apt-get install -y python3-fastapi python3-uvicorn';

function natsServerInstalled(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() ? undefined : 'nats-server is not installed (apt-get install -y nats-server)';
}

export const SERVERS = {
  gateway: {
    id: 'gateway',
    description: 'switchyard serve --demo',
    command: {
      command: process.execPath,
      args: (port) => [gatewayMain.path, 'serve', '--demo', '--port', String(port), '--host', '127.0.0.1'],
      cwd: ROOT,
      // No readyPath: /readyz waits for every endpoint, while a scenario needs only its own; the
      // harness waits per target until that endpoint answers (bench/run.ts, awaitRightAnswer).
      startTimeoutMs: 60_000,
    },
    unavailable: gatewayMain.unavailable,
  },
  'gateway-remote': {
    id: 'gateway-remote',
    description: 'the gateway with echo on a node agent, through nats-server (all on this machine)',
    command: { command: process.execPath, args: (port) => [remoteGateway.path, String(port)], cwd: ROOT, startTimeoutMs: 60_000 },
    unavailable: () => gatewayMain.unavailable() ?? remoteGateway.unavailable() ?? natsServerInstalled(),
  },
  'raw-uws': {
    id: 'raw-uws',
    description: 'uWebSockets.js answering inline (the ceiling)',
    command: { command: process.execPath, args: (port) => [rawUws.path, String(port)], readyPath: '/readyz' },
    unavailable: rawUws.unavailable,
  },
  'raw-uws-stream': {
    id: 'raw-uws-stream',
    description: 'uWebSockets.js streaming from a generator and sending files inline (the ceiling)',
    command: { command: process.execPath, args: (port) => [rawUwsStream.path, String(port)], readyPath: '/readyz' },
    unavailable: rawUwsStream.unavailable,
  },
  'naive-piscina': {
    id: 'naive-piscina',
    description: 'uWS → one piscina.run per request',
    command: { command: process.execPath, args: (port) => [naivePiscina.path, String(port)], readyPath: '/readyz' },
    unavailable: naivePiscina.unavailable,
  },
  'fastify-piscina': {
    id: 'fastify-piscina',
    description: 'fastify → one piscina.run per request',
    command: { command: process.execPath, args: (port) => [fastifyPiscina.path, String(port)], readyPath: '/readyz' },
    unavailable: fastifyPiscina.unavailable,
  },
  'fastapi-default': {
    id: 'fastapi-default',
    description: 'FastAPI on uvicorn, asyncio loop + h11 (the reference architecture)',
    command: { command: PYTHON, args: (port) => [fastapiScript, '--port', String(port)], readyPath: '/readyz' },
    unavailable: pythonModules(['fastapi', 'uvicorn'], APT_FASTAPI),
  },
  'fastapi-uvloop': {
    id: 'fastapi-uvloop',
    description: 'FastAPI on uvicorn, uvloop + httptools',
    command: { command: PYTHON, args: (port) => [fastapiScript, '--port', String(port), '--fast'], readyPath: '/readyz' },
    unavailable: pythonModules(['fastapi', 'uvicorn', 'uvloop', 'httptools'], `${APT_FASTAPI} python3-uvloop python3-httptools`),
  },
  'fastapi-file': {
    id: 'fastapi-file',
    description: "FastAPI's FileResponse on uvicorn, asyncio loop + h11 (the reference architecture's file answer)",
    command: { command: PYTHON, args: (port) => [fastapiFileScript, '--port', String(port), '--file', benchPngFile()], readyPath: '/readyz' },
    unavailable: pythonModules(['fastapi', 'uvicorn'], APT_FASTAPI),
  },
} satisfies Record<string, ServerSpec>;

export type ServerId = keyof typeof SERVERS;
