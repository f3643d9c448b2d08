/**
 * The package as a user gets it: `npm pack`, installed with production dependencies only into an
 * empty project (one install, shared by every check). From there `npx switchyard serve --demo`
 * answers, `switchyard bench` measures it, a gateway starts from code with a predictor that
 * imports `switchyard/predictor`, and a predictor importing the public types type-checks (while
 * one that misuses them does not, so the types are really there).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, tempDir } from '../helpers/gateway.js';

const run = promisify(execFile);
/** Generous: npm and tsc share a small machine with other work. These are waits, not assertions. */
const SLOW_MS = 300_000;
const TSC = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

let dir: string;
let app: string;
let packed: string[] = [];
let server: ChildProcess | undefined;
let url = '';

async function sh(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return run(command, args, { cwd, timeout: SLOW_MS, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env } });
}

/** Type-checks the project's files with the repository's tsc; its diagnostics, one per line. */
async function typecheck(): Promise<string> {
  try {
    await sh(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
    return '';
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}

before(async () => {
  dir = tempDir('sy-package-');
  app = path.join(dir, 'app');
  mkdirSync(app);
  // dist/ is built already (this test runs from it); the tarball takes it as it is.
  const { stdout } = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot);
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(info, 'npm pack reported no tarball');
  packed = info.files.map((f) => f.path);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await sh('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, info.filename)], app, {
    // The CPU build ships inside onnxruntime-node; nothing to download.
    ONNXRUNTIME_NODE_INSTALL: 'skip',
  });
  writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noEmit: true,
        skipLibCheck: true,
        // A user's project brings its own @types/node; this one borrows the repository's.
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['predictor.ts', 'misuse.ts'],
    }),
  );
});

after(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    process.kill(-server.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    if (server.exitCode === null && server.signalCode === null) process.kill(-server.pid, 'SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds the built code, its declarations and the demo model, and no tests, bench results or source maps', () => {
    for (const file of ['bin/switchyard.js', 'dist/gateway/index.js', 'dist/gateway/index.d.ts', 'dist/workers/predictor/index.d.ts', 'dist/gateway/cli/main.js', 'dist/bench/lib/http-load.js', 'examples/mlp/model.onnx']) {
      assert.ok(packed.includes(file), `${file} is missing from the tarball`);
    }
    const stray = packed.filter((f) => f.startsWith('dist/test/') || f.startsWith('bench/') || f.startsWith('dist/bench/results') || f.endsWith('.map') || f.endsWith('.tsbuildinfo'));
    assert.deepEqual(stray, []);
  });

  it('installs without devDependencies', () => {
    assert.ok(existsSync(path.join(app, 'node_modules', 'switchyard', 'package.json')));
    for (const dev of ['typescript', 'fastify']) assert.ok(!existsSync(path.join(app, 'node_modules', dev)), `${dev} was installed`);
  });

  it('serves the demo with `npx switchyard serve --demo --port 0`', async () => {
    // `timeout` bounds the server's life should this test die before `after` stops it.
    server = spawn('timeout', ['300', 'npx', '--no-install', 'switchyard', 'serve', '--demo', '--port', '0'], { cwd: app, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      server!.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        // Ready, not only listening: the demo's replicas have started.
        const m = /listening on (http:\/\/\S+)[\s\S]*\nready: /.exec(output);
        if (m) resolve(m[1]!);
      });
      server!.once('exit', (code) => reject(new Error(`switchyard serve exited (${code}): ${output}`)));
    });
    const res = await fetch(`${url}/inference/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hello"}' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { text: 'hello' });
    const streamed = await fetch(`${url}/inference/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hi","stream":true,"chunks":2,"interval_ms":10}' });
    assert.equal(streamed.status, 200);
    assert.ok((await streamed.text()).length > 0);
  });

  it('measures the served demo with `switchyard bench`, over HTTP and over WebSocket', async () => {
    assert.ok(url, 'the demo is not being served');
    writeFileSync(path.join(app, 'body.json'), '{"text":"hello"}');
    for (const transport of [[], ['--ws']]) {
      const { stdout } = await sh('npx', ['--no-install', 'switchyard', 'bench', '--url', `${url}/inference/echo`, '--body', 'body.json', '--duration', '1', '--connections', '2', '--json', ...transport], app);
      const report = JSON.parse(stdout) as { schema: string; runs: Array<{ result: { transport: string; requests: { ok: number }; errors: { total: number } } }> };
      assert.equal(report.schema, 'switchyard-bench/2');
      const run = report.runs[0]!.result;
      assert.equal(run.transport, transport.length ? 'ws' : 'http');
      assert.ok(run.requests.ok > 0, stdout);
      assert.equal(run.errors.total, 0, stdout);
    }
  });

  it('starts a gateway from code, whose predictor imports switchyard/predictor at run time', async () => {
    writeFileSync(
      path.join(app, 'shout.mjs'),
      `import { SwitchyardError } from 'switchyard/predictor';
export default {
  predict(input) {
    if (typeof input.text !== 'string') throw new SwitchyardError('SY_BAD_REQUEST', 'text must be a string');
    return { text: input.text.toUpperCase() };
  },
};
`,
    );
    writeFileSync(
      path.join(app, 'start.mjs'),
      `import { startGateway } from 'switchyard';
const gateway = await startGateway({ endpoints: { shout: { predictor: './shout.mjs' } } }, { port: 0 });
try {
  await gateway.whenReady();
  const ask = (body) => fetch('http://127.0.0.1:' + gateway.port + '/inference/shout', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const good = await ask('{"text":"hi"}');
  const bad = await ask('{"text":1}');
  console.log(JSON.stringify({ good: [good.status, await good.json()], bad: [bad.status, (await bad.json()).error.code] }));
} finally {
  await gateway.shutdown();
}
`,
    );
    const { stdout } = await sh(process.execPath, ['start.mjs'], app);
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').pop()!), { good: [200, { text: 'HI' }], bad: [400, 'SY_BAD_REQUEST'] });
  });

  it('type-checks a predictor that imports the public types from `switchyard`', async () => {
    writeFileSync(
      path.join(app, 'predictor.ts'),
      `import type { Predictor, PredictRequest, SetupContext } from 'switchyard';
import { WireTensor, SwitchyardError } from 'switchyard/predictor';

export default class Answer implements Predictor {
  private device = 'cpu';
  setup(ctx: SetupContext): void {
    this.device = ctx.device;
  }
  predict(input: { text: string }, req: PredictRequest): unknown {
    if (req.signal.aborted) throw new SwitchyardError('SY_CANCELLED', 'gone');
    return { answer: input.text.toUpperCase(), device: this.device, tensorClass: WireTensor.name };
  }
}
`,
    );
    // Misusing a field must fail: the types are real, not `any`.
    writeFileSync(
      path.join(app, 'misuse.ts'),
      `import type { SetupContext } from 'switchyard';
export function where(ctx: SetupContext): number {
  return ctx.device;
}
`,
    );
    const diagnostics = (await typecheck()).split('\n').filter((line) => line.includes('error TS'));
    assert.deepEqual(diagnostics.filter((line) => !line.startsWith('misuse.ts')), [], 'predictor.ts should type-check');
    assert.equal(diagnostics.length, 1, diagnostics.join('\n'));
    assert.match(diagnostics[0]!, /^misuse\.ts\(3,3\): error TS2322/);
  });
});
