/**
 * The load engine against real servers started here: what it reports must be the truth a client
 * sees. Servers run in this process (their event loop is this thread; the load comes from worker
 * threads), on port 0. Tolerances are wide: the machine is small and shared.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runBenchCommand, type BenchCommandOptions, type BenchReport } from '../../gateway/cli/bench-command.js';
import type { RunResult } from '../../bench/engine/result.js';
import { startServer } from '../../bench/lib/processes.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function bench(opts: Partial<BenchCommandOptions> & { url: string }): Promise<{ code: number; report: BenchReport; run: RunResult; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runBenchCommand({ duration: 2, json: true, workers: 1, ...opts }, { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } });
  const stdout = out.join('');
  assert.ok(stdout, `no report; stderr: ${err.join('')}`);
  const report = JSON.parse(stdout) as BenchReport;
  return { code, report, run: report.runs[0]!.result, stderr: err.join('') };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

test('a 1 s stall in the middle of an open-loop run shows in the corrected p99, not in the uncorrected one', async () => {
  let stallFrom = Infinity;
  const target = await serve((_req, res) => {
    const wait = stallFrom + 1000 - Date.now();
    if (Date.now() >= stallFrom && wait > 0) setTimeout(() => res.end('ok'), wait);
    else res.end('ok');
  });
  try {
    const startedAt = Date.now();
    // Two connections, as a wrk-style client would have: during the stall due requests wait to be sent.
    setTimeout(() => (stallFrom = Date.now()), 1500);
    const { run } = await bench({ url: target.url, rate: 200, duration: 4, maxConnections: 2 });
    assert.ok(Date.now() - startedAt >= 4000);
    assert.ok(run.requests.ok >= 780, `ok ${run.requests.ok}`);
    assert.ok(run.latency.corrected.p99 >= 500, `corrected p99 ${run.latency.corrected.p99} ms`);
    assert.ok(run.latency.uncorrected.p99 < 250, `uncorrected p99 ${run.latency.uncorrected.p99} ms`);
    // The generator says why the schedule slipped instead of hiding it.
    assert.equal(run.schedule.kept, false);
    assert.ok(run.requests.waitedForConnection > 100, `waited ${run.requests.waitedForConnection}`);
    assert.equal(run.requests.unsent, 0);
  } finally {
    await target.close();
  }
});

test('a constant-rate open-loop run sends what it was asked to, within 2%', async () => {
  const target = await serve((_req, res) => res.end('ok'));
  try {
    const { run } = await bench({ url: target.url, rate: 400, duration: 3 });
    assert.equal(run.requests.scheduled, 1200);
    assert.equal(run.requests.sent, 1200);
    assert.equal(run.requests.ok, 1200);
    assert.ok(Math.abs(run.rates.sent - 400) <= 8, `sent ${run.rates.sent}/s`);
    assert.ok(Math.abs(run.rates.throughput - 400) <= 8, `throughput ${run.rates.throughput}/s`);
    assert.equal(run.errors.total, 0);
  } finally {
    await target.close();
  }
});

test('an open loop opens the connections its first milliseconds need before the clock starts', async () => {
  let connections = 0;
  let connectionsAtFirstRequest = -1;
  const target = await serve((_req, res) => {
    if (connectionsAtFirstRequest < 0) connectionsAtFirstRequest = connections;
    res.end('ok');
  });
  target.server.on('connection', () => connections++);
  try {
    // 5,000 req/s: one connection per 500 req/s of the peak rate, 10, open and connected first.
    const { run } = await bench({ url: target.url, rate: 5000, duration: 0.5 });
    assert.equal(run.requests.ok, 2500);
    assert.ok(connectionsAtFirstRequest >= 10, `${connectionsAtFirstRequest} connections when the first request came`);
    assert.ok(run.connections.opened >= 10);
  } finally {
    await target.close();
  }
});

const rawUws = new URL('../../bench/baselines/raw-uws.js', import.meta.url).pathname;

test('a generator that falls behind catches up on the connections it has, not by opening one per late request', async () => {
  // The server in a process of its own, so that only the generator stalls.
  const server = await startServer({ command: process.execPath, args: (port) => [rawUws, String(port)], readyPath: '/readyz' });
  try {
    // With no load threads the load runs on this thread: blocking it for 150 ms mid-run is a stall
    // of the generator, after which 750 requests are due at once.
    const block = setTimeout(() => {
      const until = Date.now() + 150;
      while (Date.now() < until);
    }, 600);
    const { run } = await bench({ url: `${server.url}/readyz`, rate: 5000, duration: 1.5, workers: 0 });
    clearTimeout(block);
    assert.equal(run.requests.ok, 7500);
    assert.ok(run.schedule.lag.max >= 100, `the generator was behind by ${run.schedule.lag.max} ms at most`);
    assert.ok(run.connections.peak <= 60, `${run.connections.peak} connections at the peak (10 warmed)`);
  } finally {
    await server.stop();
  }
});

test("the generator reports its own CPU over the run, and says when it was busy throughout", async () => {
  const target = await serve((_req, res) => res.end('ok'));
  try {
    const { run } = await bench({ url: target.url, connections: 4, duration: 1 });
    const g = run.generator;
    assert.equal(g.threads, 1);
    assert.ok(g.cpuS > 0 && g.cpuS < 10, `cpu ${g.cpuS} s`);
    assert.ok(g.cpuUsPerRequest > 0, `${g.cpuUsPerRequest} µs per request`);
    assert.ok(Math.abs(g.cpuUsPerRequest - (g.cpuS * 1e6) / run.requests.sent) < 0.1);
    assert.ok(g.busy > 0, `busy ${g.busy}`);
  } finally {
    await target.close();
  }
});

test('a closed loop times each request once: its corrected and uncorrected latencies are one, and nothing waited to be sent', async () => {
  // Each answer takes 3 ms; the request records of a closed loop are reused from one request to the next.
  const target = await serve((_req, res) => setTimeout(() => res.end('ok'), 3));
  try {
    const { run } = await bench({ url: target.url, connections: 4, duration: 1 });
    assert.equal(run.errors.total, 0, JSON.stringify(run.errors));
    assert.ok(run.requests.ok > 100, `${run.requests.ok} answers`);
    assert.equal(run.latency.corrected.count, run.requests.ok);
    assert.deepEqual(run.latency.uncorrected, run.latency.corrected);
    assert.deepEqual(run.latency.spectrum.uncorrected, run.latency.spectrum.corrected);
    for (const point of run.timeline) assert.equal(point.p99Uncorrected, point.p99);
    // Every request went out the moment its connection was free.
    assert.equal(run.schedule.sendDelay.count, run.requests.sent);
    assert.equal(run.schedule.sendDelay.max, 0.001);
    // Each request is timed from its own send: a record carried over from the last request would add its time.
    assert.ok(run.latency.corrected.p50 >= 3 && run.latency.corrected.p50 < 30, `p50 ${run.latency.corrected.p50} ms`);
    assert.ok(run.latency.corrected.max < 500, `max ${run.latency.corrected.max} ms`);
  } finally {
    await target.close();
  }
});

test('a request larger than the socket buffers arrives whole, also on a kept-alive connection, from a server that reads slowly', async () => {
  // 16 MiB does not fit the kernel's buffers: the write is queued and finishes as the server reads.
  const size = 16 * 1024 * 1024;
  const folder = mkdtempSync(join(tmpdir(), 'bench-large-'));
  const bodyFile = join(folder, 'body.bin');
  writeFileSync(bodyFile, Buffer.alloc(size, 0x61));
  const received: number[] = [];
  const target = await serve((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      req.pause();
      setTimeout(() => req.resume(), 1);
    });
    req.on('end', () => {
      received.push(bytes);
      res.end(String(bytes));
    });
  });
  try {
    const { run } = await bench({ url: target.url, connections: 2, duration: 2, body: bodyFile });
    assert.equal(run.errors.total, 0, JSON.stringify(run.errors));
    assert.ok(run.requests.ok > run.connections.opened, `ok ${run.requests.ok} on ${run.connections.opened} connections: some went on a kept-alive one`);
    assert.ok(received.length >= run.requests.ok);
    assert.deepEqual(new Set(received), new Set([size]));
  } finally {
    await target.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

/** A server in its own process that answers and closes the connection, every time. */
const CLOSING_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => { res.setHeader('connection', 'close'); res.end('{"ok":true}'); });
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + server.address().port));
`;

async function sequentialP50(url: string, count: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const req = http.request(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    times.push(performance.now() - t0);
  }
  return percentile(times, 50);
}

test('against a server that closes every connection, p50 matches a sequential client', async () => {
  const server = await startServer({ command: process.execPath, args: (port) => ['-e', CLOSING_SERVER, String(port)] });
  try {
    // Rounds alternate the two clients, so a busy moment of the machine does not fall on one only.
    const sequential: number[] = [];
    const measured: number[] = [];
    for (let round = 0; round < 3; round++) {
      sequential.push(await sequentialP50(server.url, 100));
      const { run } = await bench({ url: server.url, connections: 1, duration: 1 });
      assert.equal(run.errors.total, 0, JSON.stringify(run.errors));
      assert.ok(run.connections.opened >= run.requests.ok, 'one connection per request');
      measured.push(run.latency.corrected.p50);
    }
    const a = percentile(measured, 50);
    const b = percentile(sequential, 50);
    assert.ok(Math.abs(a - b) <= 5, `bench p50 ${measured.join(', ')} ms; sequential client p50 ${sequential.map((v) => v.toFixed(3)).join(', ')} ms`);
  } finally {
    await server.stop();
  }
});

/** Five chunks: the first after 30 ms, then one every 20 ms. */
function slowChunks(sse: boolean) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'text/plain' });
    let sent = 0;
    const next = (): void => {
      if (sent === 5) {
        if (sse) res.write('event: end\ndata: {}\n\n');
        res.end();
        return;
      }
      res.write(sse ? `data: piece ${sent}\n\n` : `piece ${sent}\n`);
      sent++;
      setTimeout(next, 20);
    };
    setTimeout(next, 30);
  };
}

async function handWritten(url: string, streams: number): Promise<{ firstChunk: number[]; gaps: number[]; chunks: number[]; bytes: number[] }> {
  const out = { firstChunk: [] as number[], gaps: [] as number[], chunks: [] as number[], bytes: [] as number[] };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < streams; i++) {
    await new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      let last = 0;
      let chunks = 0;
      let bytes = 0;
      const req = http.request(url, { agent }, (res) => {
        res.on('data', (data: Buffer) => {
          const now = performance.now();
          if (chunks === 0) out.firstChunk.push(now - t0);
          else out.gaps.push(now - last);
          last = now;
          chunks++;
          bytes += data.length;
        });
        res.on('end', () => {
          out.chunks.push(chunks);
          out.bytes.push(bytes);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  }
  agent.destroy();
  return out;
}

test('chunked stream metrics match a hand-written client', async () => {
  const target = await serve(slowChunks(false));
  try {
    const hand = await handWritten(target.url, 15);
    const { run } = await bench({ url: target.url, connections: 2, duration: 2, stream: true });
    const s = run.stream!;
    assert.equal(run.errors.total, 0);
    assert.equal(s.complete, run.requests.ok);
    assert.equal(s.chunksPerStream.min, 5);
    assert.equal(s.chunksPerStream.max, 5);
    assert.deepEqual(new Set(hand.chunks), new Set([5]));
    assert.equal(s.bytesPerStream.p50, hand.bytes[0]);
    assert.ok(Math.abs(s.firstChunkUncorrected.p50 - percentile(hand.firstChunk, 50)) <= 6, `ttfc ${s.firstChunkUncorrected.p50} vs ${percentile(hand.firstChunk, 50)}`);
    assert.ok(Math.abs(s.chunkGap.p50 - percentile(hand.gaps, 50)) <= 6, `gap ${s.chunkGap.p50} vs ${percentile(hand.gaps, 50)}`);
  } finally {
    await target.close();
  }
});

test('SSE: each event is a chunk, the end event is not', async () => {
  const target = await serve(slowChunks(true));
  try {
    const { run } = await bench({ url: target.url, connections: 2, duration: 1.5, sse: true });
    assert.equal(run.errors.total, 0);
    assert.ok(run.requests.ok > 0);
    assert.equal(run.stream!.chunksPerStream.min, 5);
    assert.equal(run.stream!.chunksPerStream.max, 5);
    assert.ok(Math.abs(run.stream!.chunkGap.p50 - 20) <= 8, `gap p50 ${run.stream!.chunkGap.p50}`);
  } finally {
    await target.close();
  }
});

test('streams that end early or carry an error frame are counted apart, never as successes', async () => {
  let n = 0;
  const target = await serve((req, res) => {
    const which = n++ % 3;
    const sse = req.headers.accept === 'text/event-stream';
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(sse ? 'data: one\n\n' : 'one\n');
    if (which === 0) res.end(sse ? 'event: end\ndata: {}\n\n' : 'two\n');
    else if (which === 1) setTimeout(() => res.destroy(), 5); // cut: no terminating chunk
    else if (sse) res.end('event: error\ndata: {"error":{"code":"SY_PREDICTOR_ERROR"}}\n\n');
    else {
      res.write('\n{"error":{"code":"SY_PREDICTOR_ERROR","message":"boom"}}\n');
      setTimeout(() => res.destroy(), 5);
    }
  });
  try {
    for (const sse of [false, true]) {
      n = 0;
      const { code, run } = await bench({ url: target.url, connections: 1, duration: 1, ...(sse ? { sse: true } : { stream: true }) });
      const s = run.stream!;
      assert.equal(code, 1);
      assert.ok(s.complete > 0 && s.truncated > 0 && s.errorFrame > 0, JSON.stringify(s));
      assert.equal(run.requests.ok, s.complete);
      assert.equal(run.errors.byKind.truncated ?? 0, s.truncated);
      assert.equal(run.errors.byKind['error-frame'] ?? 0, s.errorFrame);
      assert.ok(Math.abs(s.complete - s.truncated) <= 2 && Math.abs(s.complete - s.errorFrame) <= 2, JSON.stringify(s));
    }
  } finally {
    await target.close();
  }
});

test('SLO search converges on the capacity of a server with fixed service time and concurrency', async () => {
  // Two requests at a time, 20 ms each: at most 100 requests per second.
  const queue: Array<() => void> = [];
  let busy = 0;
  const release = (): void => {
    if (busy >= 2) return;
    const next = queue.shift();
    if (!next) return;
    busy++;
    next();
  };
  const target = await serve((_req, res) => {
    queue.push(() =>
      setTimeout(() => {
        res.end('ok');
        busy--;
        release();
      }, 20),
    );
    release();
  });
  try {
    const { code, report } = await bench({ url: target.url, slo: 'p99=250ms', search: true, rate: 20, duration: 1.5, timeout: 5 });
    assert.equal(code, 0);
    const best = report.search!.bestRate!;
    // Above capacity the backlog grows by (rate - 100) requests a second, each adding 10 ms of
    // wait: a 1.5 s probe stays within a 250 ms p99 up to about 100 + 250 / 10 / 1.5 ≈ 116 req/s.
    // So the search may honestly answer a little above 100; far above (or below half) is wrong.
    assert.ok(best >= 55 && best <= 120, `best ${best} req/s; probes ${JSON.stringify(report.search!.probes)}`);
    assert.ok(report.search!.probes.some((p) => !p.met && p.rate > best), 'a rate above the answer missed the SLO');
    const winning = report.runs.filter((r) => r.rate === best).at(-1)!.result;
    assert.equal(winning.slo!.met, true);
    assert.ok(winning.slo!.goodput > 0.9 * best, `goodput ${winning.slo!.goodput}`);
  } finally {
    await target.close();
  }
});

test('--compare measures both targets in alternating rounds and reports ratios with their spread', async () => {
  const fast = await serve((_req, res) => res.end('ok'));
  const slow = await serve((_req, res) => setTimeout(() => res.end('ok'), 10));
  try {
    const { report } = await bench({ url: fast.url, compare: slow.url, connections: 2, duration: 0.6, rounds: 2 });
    assert.equal(report.kind, 'compare');
    assert.deepEqual(report.runs.map((r) => r.target), ['a', 'b', 'b', 'a']);
    const c = report.comparison!;
    assert.equal(c.rounds, 2);
    assert.ok(c.ratios.throughput.median < 1, `B/A throughput ${c.ratios.throughput.median}`);
    assert.ok(c.ratios.p50.median > 1, `B/A p50 ${c.ratios.p50.median}`);
    assert.ok(c.ratios.throughput.min <= c.ratios.throughput.median && c.ratios.throughput.median <= c.ratios.throughput.max);
  } finally {
    await fast.close();
    await slow.close();
  }
});

test('WebSocket streams, open loop: chunks and bytes per stream match a hand-written client', async () => {
  const rawUwsStream = new URL('../../bench/baselines/raw-uws-stream.js', import.meta.url).pathname;
  const server = await startServer({ command: process.execPath, args: (port) => [rawUwsStream, String(port)], readyPath: '/readyz' });
  const folder = mkdtempSync(join(tmpdir(), 'bench-ws-'));
  try {
    const url = server.url.replace('http', 'ws') + '/inference/stream';
    // The hand-written client: one stream, its chunk messages counted and their bytes summed.
    const hand = await new Promise<{ chunks: number; bytes: number }>((resolve, reject) => {
      const ws = new WebSocket(url);
      let chunks = 0;
      let bytes = 0;
      ws.on('open', () => ws.send(JSON.stringify({ id: 'h1', input: { text: 'x', chunks: 7 }, stream: true })));
      ws.on('message', (data: Buffer) => {
        bytes += data.length;
        const message = JSON.parse(data.toString()) as { chunk?: string; done?: boolean };
        if (message.chunk !== undefined) chunks++;
        if (message.done) {
          ws.close();
          resolve({ chunks, bytes });
        }
      });
      ws.on('error', reject);
    });
    const body = join(folder, 'input.json');
    writeFileSync(body, JSON.stringify({ text: 'x', chunks: 7 }));
    const { run } = await bench({ url, ws: true, stream: true, body, rate: 100, duration: 1.5, inflight: 3, maxConnections: 8 });
    assert.equal(run.transport, 'ws');
    assert.equal(run.errors.total, 0, JSON.stringify(run.errors));
    assert.equal(run.requests.ok, 150);
    assert.equal(run.stream!.complete, 150);
    assert.equal(hand.chunks, 7);
    assert.equal(run.stream!.chunksPerStream.min, 7);
    assert.equal(run.stream!.chunksPerStream.max, 7);
    // Our ids are shorter than "h1" or as long; bytes differ only by the id's length in each message.
    assert.ok(Math.abs(run.stream!.bytesPerStream.p50 - hand.bytes) <= 8 * 8, `bytes ${run.stream!.bytesPerStream.p50} vs ${hand.bytes}`);
  } finally {
    await server.stop();
    rmSync(folder, { recursive: true, force: true });
  }
});
