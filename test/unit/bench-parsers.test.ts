import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser } from '../../bench/engine/response-parser.js';
import { SseReader } from '../../bench/engine/sse.js';
import { parseArrival, parseSlo, parseStages, parseSweep, UsageError } from '../../bench/engine/options.js';
import { nextSearchRate, searchResult, type SearchProbe } from '../../bench/engine/slo.js';
import type { RequestRecord } from '../../bench/engine/channel.js';

function parse(pieces: string[], bodiless = false): { status: number; keepAlive: boolean; chunks: string[]; complete: boolean; error: string | undefined; parser: ResponseParser } {
  const out = { status: 0, keepAlive: true, chunks: [] as string[], complete: false, error: undefined as string | undefined };
  const parser = new ResponseParser({
    onHead: (status, keepAlive) => Object.assign(out, { status, keepAlive }),
    onChunk: (data) => out.chunks.push(data.toString()),
    onComplete: () => (out.complete = true),
  });
  parser.begin(bodiless);
  for (const piece of pieces) out.error ??= parser.execute(Buffer.from(piece));
  return { ...out, parser };
}

test('Content-Length bodies, split anywhere, complete exactly', () => {
  const whole = 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX: y\r\n\r\nhello world';
  for (let cut = 1; cut < whole.length; cut++) {
    const r = parse([whole.slice(0, cut), whole.slice(cut)]);
    assert.equal(r.status, 200);
    assert.equal(r.complete, true, `cut at ${cut}`);
    assert.equal(r.chunks.join(''), 'hello world');
  }
});

test('chunked bodies: one chunk per chunk, whatever the reads; the terminating chunk completes', () => {
  const whole = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n';
  for (let cut = 1; cut < whole.length; cut++) {
    const r = parse([whole.slice(0, cut), whole.slice(cut)]);
    assert.deepEqual(r.chunks, ['hello', ' world'], `cut at ${cut}`);
    assert.equal(r.complete, true);
  }
  const cutShort = parse(['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n']);
  assert.equal(cutShort.complete, false);
  assert.equal(cutShort.parser.close(), 'truncated');
});

test('Connection: close, HTTP/1.0, 1xx, HEAD, 204 and bodies read to the close', () => {
  assert.equal(parse(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n']).keepAlive, false);
  assert.equal(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).keepAlive, false);
  assert.equal(parse(['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n']).keepAlive, true);
  const continued = parse(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok']);
  assert.equal(continued.status, 201);
  assert.equal(continued.complete, true);
  assert.equal(parse(['HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n'], true).complete, true);
  assert.equal(parse(['HTTP/1.1 204 No Content\r\n\r\n']).complete, true);
  const toClose = parse(['HTTP/1.1 200 OK\r\n\r\nsome', ' bytes']);
  assert.equal(toClose.complete, false);
  assert.equal(toClose.parser.close(), 'complete');
  assert.ok(parse(['SSH-2.0-OpenSSH\r\n\r\n']).error);
  assert.equal(parse([]).parser.close(), 'empty');
});

test('SSE: events across reads, end and error events, [DONE]', () => {
  const record = (): RequestRecord => ({ intended: 0, dispatched: 0, firstChunkAt: 0, lastChunkAt: 0, chunks: 0, bytes: 0, errorFrame: false, ended: false, retried: false, id: '' });
  const reader = new SseReader();
  const r = record();
  let events = 0;
  for (const piece of ['data: a\n', '\ndata: b\r\n\r', '\ndata: multi\ndata: line\n\nevent: end\ndata: {}\n\n']) reader.feed(Buffer.from(piece), r, () => events++);
  assert.equal(events, 3);
  assert.equal(r.ended, true);
  assert.equal(r.errorFrame, false);
  const e = record();
  reader.reset();
  reader.feed(Buffer.from('data: x\n\nevent: error\ndata: {"error":{}}\n\n'), e, () => undefined);
  assert.equal(e.errorFrame, true);
  const done = record();
  reader.reset();
  reader.feed(Buffer.from('data: x\n\ndata: [DONE]\n\n'), done, () => undefined);
  assert.equal(done.ended, true);
});

test('option languages: arrivals, stages, sweeps, SLOs; errors name the option', () => {
  assert.deepEqual(parseArrival('gamma:2.5'), { kind: 'gamma', cv: 2.5 });
  assert.throws(() => parseArrival('zipf'), (e: Error) => e instanceof UsageError && /--arrival/.test(e.message));
  assert.deepEqual(parseStages('10s:500,20s:2000,500ms:0'), [
    { durationS: 10, fromRate: 0, toRate: 500 },
    { durationS: 20, fromRate: 500, toRate: 2000 },
    { durationS: 0.5, fromRate: 2000, toRate: 0 },
  ]);
  assert.throws(() => parseStages('10:x'), /--stages/);
  assert.deepEqual(parseSweep('500..8000x4'), [500, 3000, 5500, 8000]);
  assert.throws(() => parseSweep('8000..500x4'), /--sweep/);
  assert.deepEqual(parseSlo('p99=50ms,ttft_p99=0.2s,errors=0.5%'), {
    terms: [
      { name: 'p99', metric: 'latency', percentile: 99, limitMs: 50 },
      { name: 'ttft_p99', metric: 'firstChunk', percentile: 99, limitMs: 200 },
    ],
    maxErrorRate: 0.005,
  });
  assert.throws(() => parseSlo('p99'), /--slo/);
  assert.throws(() => parseSlo('lat=5ms'), /--slo/);
});

test('SLO search doubles, then bisects to the capacity', () => {
  const capacity = 730;
  const settings = { startRate: 50, maxRate: 1e6, precision: 0.05, maxProbes: 20 };
  const probes: SearchProbe[] = [];
  for (let rate = nextSearchRate(probes, settings); rate !== undefined; rate = nextSearchRate(probes, settings)) probes.push({ rate, met: rate <= capacity });
  const best = searchResult(probes)!;
  assert.deepEqual(probes.slice(0, 6).map((p) => p.rate), [50, 100, 200, 400, 800, 600]);
  assert.ok(best <= capacity && best >= capacity * 0.95, `best ${best}`);
  // Starting above the capacity halves first.
  const down: SearchProbe[] = [];
  for (let rate = nextSearchRate(down, { ...settings, startRate: 5000 }); rate !== undefined; rate = nextSearchRate(down, { ...settings, startRate: 5000 })) down.push({ rate, met: rate <= capacity });
  assert.ok(searchResult(down)! >= capacity * 0.95);
  assert.equal(nextSearchRate([{ rate: 1, met: false }], settings), undefined);
});
