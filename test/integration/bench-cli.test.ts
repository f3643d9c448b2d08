import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../bench/lib/processes.js';
import { runBenchCommand, type BenchCommandOptions, type BenchReport } from '../../gateway/cli/bench-command.js';
import type { RunResult } from '../../bench/engine/result.js';

const rawUws = new URL('../../bench/baselines/raw-uws.js', import.meta.url).pathname;

let server: RunningServer;
let folder: string;
let bodyFile: string;

before(async () => {
  server = await startServer({ command: process.execPath, args: (port) => [rawUws, String(port)], readyPath: '/readyz' });
  folder = mkdtempSync(join(tmpdir(), 'bench-cli-'));
  bodyFile = join(folder, 'body.json');
  writeFileSync(bodyFile, '{"text":"hello"}');
});

after(async () => {
  await server?.stop();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

async function bench(opts: Partial<BenchCommandOptions> & { url: string }): Promise<{ code: number; report: RunResult | undefined; whole: BenchReport | undefined; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  // workers 0: these runs put the load on this thread (the main-thread engine); bench-engine.test.ts runs it on a worker thread.
  const code = await runBenchCommand(
    { connections: 4, duration: 1, json: true, workers: 0, ...opts },
    { stdout: { write: (text: string) => out.push(text) }, stderr: { write: (text: string) => err.push(text) } },
  );
  const stdout = out.join('');
  const whole = stdout ? (JSON.parse(stdout) as BenchReport) : undefined;
  return { code, report: whole?.runs[0]?.result, whole, stderr: err.join('') };
}

function assertOrdered(latency: RunResult['latency']['corrected']): void {
  assert.ok(latency.p50 > 0, `p50 ${latency.p50}`);
  assert.ok(latency.p50 <= latency.p90 && latency.p90 <= latency.p99 && latency.p99 <= latency.p99_9 && latency.p99_9 <= latency.max, JSON.stringify(latency));
}

test('HTTP: reports completed requests, no errors and ordered percentiles', async () => {
  const { code, report, stderr } = await bench({ url: `${server.url}/inference/echo`, body: bodyFile });
  assert.equal(code, 0, stderr);
  assert.ok(report);
  assert.equal(report.transport, 'http');
  assert.equal(report.mode, 'closed');
  assert.ok(report.requests.ok > 0);
  assert.ok(report.rates.throughput > 0);
  assert.equal(report.errors.total, 0);
  assert.equal(report.latency.corrected.count, report.requests.ok);
  assertOrdered(report.latency.corrected);
});

test('HTTP: failed requests are counted by status, fail the exit code, and are not timed as chunks', async () => {
  const { code, report } = await bench({ url: `${server.url}/no/such/route`, stream: true });
  assert.equal(code, 1);
  assert.ok(report);
  assert.equal(report.requests.ok, 0);
  assert.ok(report.errors.byKind['404']! > 0);
  assert.equal(report.errors.total, report.errors.byKind['404']);
  assert.equal(report.stream?.chunksPerStream.count, 0);
  assert.equal(report.stream?.firstChunk.count, 0);
});

test('WebSocket: tagged requests complete over a few sockets', async () => {
  const { code, report, stderr } = await bench({ url: `${server.url}/inference/echo`, ws: true, body: bodyFile, inflight: 4 });
  assert.equal(code, 0, stderr);
  assert.ok(report);
  assert.equal(report.transport, 'ws');
  assert.ok(report.requests.ok > 0);
  assert.equal(report.errors.total, 0);
  assertOrdered(report.latency.corrected);
});

test('HTTP stream: time to first chunk and gaps between chunks are reported', async () => {
  // Three chunks a few milliseconds apart, so they arrive as separate reads; only when asked for a stream.
  const streaming: Server = createServer((req, res) => {
    let asked = '';
    req.on('data', (chunk: Buffer) => (asked += chunk.toString()));
    req.on('end', () => {
      if ((JSON.parse(asked) as { stream?: unknown }).stream !== true) {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const tick = setInterval(() => {
        res.write(`chunk ${sent}\n`);
        if (++sent === 3) {
          clearInterval(tick);
          res.end();
        }
      }, 3);
    });
  });
  await new Promise<void>((resolve) => streaming.listen(0, '127.0.0.1', resolve));
  const { port } = streaming.address() as { port: number };
  try {
    const { code, report, stderr } = await bench({ url: `http://127.0.0.1:${port}/inference/stream`, body: bodyFile, stream: true });
    assert.equal(code, 0, stderr);
    assert.ok(report?.stream);
    assert.ok(report.requests.ok > 0);
    assert.equal(report.stream.complete, report.requests.ok);
    assert.equal(report.stream.chunksPerStream.min, 3, 'every stream has its three chunks');
    assert.equal(report.stream.chunksPerStream.max, 3);
    assert.ok(report.stream.firstChunk.count > 0);
    assert.ok(report.stream.chunkGap.count > 0);
    assert.ok(report.stream.firstChunk.p50 <= report.latency.corrected.p50, 'the first chunk comes before the end of the response');
  } finally {
    streaming.closeAllConnections();
    await new Promise((resolve) => streaming.close(resolve));
  }
});

test('bad options exit with 2 and say which option', async () => {
  const { code, stderr } = await bench({ url: `${server.url}/inference/echo`, connections: 0 });
  assert.equal(code, 2);
  assert.match(stderr, /--connections/);
  const threads = await bench({ url: `${server.url}/inference/echo`, workers: -1 });
  assert.equal(threads.code, 2);
  assert.match(threads.stderr, /--workers/);
});

test('a reader that goes away before the report ends the command quietly, as SIGPIPE ends a C tool', async () => {
  const { spawn } = await import('node:child_process');
  const bin = new URL('../../../bin/switchyard.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [bin, 'bench', '--url', `${server.url}/inference/echo`, '-b', bodyFile, '-c', '2', '-d', '0.3', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The reading end of its stdout closes before it writes anything.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(code, 141, stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled|at /);
});
