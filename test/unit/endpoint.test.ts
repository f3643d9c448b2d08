/**
 * The endpoint runtime against a scripted replica link: orderings that real threads make rare
 * (a cancel in the same turn as its request, a scale-down during a replica's start) made certain.
 */
import assert from 'node:assert/strict';
import { existsSync, fstatSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { validateConfig } from '../../gateway/config/load.js';
import { Call, type CallSink } from '../../gateway/endpoints/call.js';
import { Endpoint, type EndpointObserver, type ReplicaFactory } from '../../gateway/endpoints/endpoint.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { ReplicaLink } from '../../workers/protocol/link.js';
import { deathBackoffMs, DEATH_WINDOW_MS, RestartBackoff } from '../../gateway/endpoints/restart-backoff.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { ScriptedLink } from '../helpers/scripted-link.js';
import { tempDir } from '../helpers/gateway.js';

class Factory implements ReplicaFactory {
  links: ScriptedLink[] = [];
  constructor(
    private readonly autoStart = true,
    private readonly confirmsCancels = false,
    /** Nodes the replicas run on, in turn (default: this machine). */
    private readonly nodes: string[] = ['local'],
  ) {}
  create(_e: string, _c: unknown, count: number): ReplicaLink[] {
    const made = Array.from({ length: count }, (_, i) => {
      const n = this.links.length + i;
      return new ScriptedLink(`e/cpu/${n + 1}`, { autoStart: this.autoStart, confirmsCancels: this.confirmsCancels, node: this.nodes[n % this.nodes.length]! });
    });
    this.links.push(...made);
    return made;
  }
}

const observer: EndpointObserver = { onFinished() {}, onLog() {} };

class Sink implements CallSink {
  errors: SwitchyardError[] = [];
  results = 0;
  onResult(): void {
    this.results++;
  }
  onFile(): void {}
  onStreamStart(): void {}
  onChunks(): void {}
  onStreamEnd(): void {}
  onError(err: SwitchyardError): void {
    this.errors.push(err);
  }
}

let ids = 1;
function call(sink = new Sink(), clock?: FakeClock, timeoutMs = 60_000, stream = false): Call {
  const now = clock ? clock.wallMs() : Date.now();
  return new Call({ id: ids++, encoding: 'json', deadline: now + timeoutMs, ...(stream ? { stream: true, input: {} } : {}) }, sink, ['local'], clock ? clock.now() : performance.now());
}

function endpoint(fields: Record<string, unknown>, factory: Factory, clock?: FakeClock): Endpoint {
  const config = validateConfig({ endpoints: { e: { predictor: '/p.js', ...fields } } }).endpoints.e!;
  return new Endpoint('e', config, factory, observer, clock);
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('Endpoint', () => {
  test("a request cancelled in the turn it joined a busy replica's batch is never sent, and no cancel is needed", async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const first = call();
    ep.submit(first);
    const c = call();
    ep.submit(c);
    ep.cancel(c);
    await turn();
    assert.deepEqual(
      factory.links[0]!.sent.map((r) => r.id),
      [first.id],
    );
    assert.deepEqual(factory.links[0]!.controls, []);
    assert.equal(ep.inFlight, 1);
    await ep.close();
  });

  test('a lone request on an idle replica is sent at once, not in the next turn', async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const c = call();
    ep.submit(c);
    assert.deepEqual(
      factory.links[0]!.sent.map((r) => r.id),
      [c.id],
    );
    ep.submit(call());
    assert.equal(factory.links[0]!.sent.length, 1, 'a second request waits for the batch of this turn');
    await turn();
    assert.equal(factory.links[0]!.sent.length, 2);
    await ep.close();
  });

  test('a request cancelled after it was sent gets a cancel', async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const c = call();
    ep.submit(c);
    await turn();
    ep.cancel(c);
    assert.deepEqual(factory.links[0]!.controls, [{ t: 'cancel', id: c.id }]);
    await ep.close();
  });

  test('cancelled queue entries do not count against max_queue', async () => {
    const factory = new Factory();
    const ep = endpoint({ max_concurrency: 1, max_queue: 2 }, factory);
    ep.reconcile();
    await turn();
    ep.submit(call()); // running
    const queued = [call(), call()];
    for (const c of queued) ep.submit(c);
    for (const c of queued) ep.cancel(c);
    const sink = new Sink();
    ep.submit(call(sink));
    assert.deepEqual(sink.errors, []);
    assert.equal(ep.queued, 1);
    await ep.close();
  });

  test('a replica drained while starting is not a failed start', async () => {
    const factory = new Factory(false);
    const ep = endpoint({ replicas: 2 }, factory);
    ep.reconcile();
    const sink = new Sink();
    ep.submit(call(sink)); // waits for a replica
    ep.scaleTo(1, 'test');
    const kept = new Set(ep.replicas.map((r) => r.link));
    const drained = factory.links.filter((l) => !kept.has(l));
    assert.equal(drained.length, 1);
    drained[0]!.failStart(); // destroying a starting thread rejects its setup
    await turn();
    assert.equal(ep.lastStartError, undefined);
    assert.deepEqual(sink.errors, [], 'queued requests are not failed');
    await ep.close();
  });

  test('a file for a request that already left is deleted and its descriptor closed, not leaked', async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const file = path.join(tempDir(), 'late.png');
    writeFileSync(file, 'png');
    const fd = openSync(file, 'r');
    factory.links[0]!.events.onFrames([{ t: 'file', id: 999_999, path: file, fd, size: 3, contentType: 'image/png', remove: true }]);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(file), false);
    assert.throws(() => fstatSync(fd), /EBADF/, 'the descriptor is closed');
    await ep.close();
  });

  test('at close, requests still in flight are answered SY_SHUTTING_DOWN', async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const sink = new Sink();
    ep.submit(call(sink));
    await turn();
    await ep.drain(10);
    await ep.close();
    assert.deepEqual(sink.errors.map((e) => e.code), ['SY_SHUTTING_DOWN']);
    assert.equal(ep.inFlight, 0);
  });
});

describe('Endpoint removed from its deployment', () => {
  test('waiting requests and late arrivals get the removal error; the running one finishes', async () => {
    const factory = new Factory();
    const ep = endpoint({ max_concurrency: 1 }, factory);
    ep.reconcile();
    await turn();
    const [running, waiting, late] = [new Sink(), new Sink(), new Sink()];
    const first = call(running);
    ep.submit(first);
    ep.submit(call(waiting));
    assert.equal(ep.queued, 1);
    ep.remove(new SwitchyardError('SY_NOT_FOUND', 'endpoint "e" was removed from the deployment'));
    ep.submit(call(late));
    assert.deepEqual([waiting, late].map((s) => s.errors.map((e) => `${e.status} ${e.code}`)), [['404 SY_NOT_FOUND'], ['404 SY_NOT_FOUND']]);
    await turn();
    factory.links[0]!.events.onFrames([{ t: 'result', id: first.id, body: new Uint8Array([123, 125]), contentType: 'application/json' }]);
    assert.equal(running.results, 1);
    assert.deepEqual(running.errors, []);
    assert.equal(ep.inFlight + ep.queued, 0);
    await ep.close();
  });
});

describe('Endpoint: a NATS server dies between the gateway and a node', () => {
  const result = (id: number) => ({ t: 'result' as const, id, body: new Uint8Array([123, 125]), contentType: 'application/json' });

  /** One replica on each of n1 and n2, a request in flight on each. */
  async function twoNodes(fields: Record<string, unknown> = {}) {
    const factory = new Factory(true, false, ['n1', 'n2']);
    const ep = endpoint({ replicas: 2, max_concurrency: 1, ...fields }, factory);
    ep.reconcile();
    await turn();
    const sinks = [new Sink(), new Sink()];
    const calls = sinks.map((s) => call(s));
    for (const c of calls) ep.submit(c);
    await turn();
    const [n1, n2] = factory.links as [ScriptedLink, ScriptedLink];
    const onN1 = calls.find((c) => n1.sent.some((r) => r.id === c.id))!;
    const onN2 = calls.find((c) => n2.sent.some((r) => r.id === c.id))!;
    assert.ok(onN1 && onN2, 'one request on each node');
    return { ep, n1, n2, onN1, onN2 };
  }

  test('requests in flight on a node that reconnected are cancelled there and sent again; the client gets one answer', async () => {
    const { ep, n1, n2, onN1, onN2 } = await twoNodes();
    ep.onNodeChange('n1', 'reconnected', true);
    assert.deepEqual(n1.controls, [{ t: 'cancel', id: onN1.id }]);
    assert.deepEqual(n2.controls, [], 'the other node is left alone');
    await turn();
    // Sent again to a replica with room: n1's (n2's holds its one slot).
    assert.equal(n1.sent.filter((r) => r.id === onN1.id).length, 2);
    assert.equal(ep.inFlight, 2);
    // The copy sent before the reconnection did arrive after all: its answer is taken, the second is not.
    n1.events.onFrames([result(onN1.id)]);
    n1.events.onFrames([result(onN1.id)]);
    n2.events.onFrames([result(onN2.id)]);
    const sinks = [onN1.sink as Sink, onN2.sink as Sink];
    assert.deepEqual(sinks.map((s) => s.results), [1, 1]);
    assert.deepEqual(sinks.flatMap((s) => s.errors), []);
    assert.equal(ep.inFlight, 0);
    await ep.close();
  });

  test('a non-idempotent endpoint never sends a request twice: it stays in flight on the reconnected node', async () => {
    const { ep, n1, onN1 } = await twoNodes({ idempotent: false });
    ep.onNodeChange('n1', 'reconnected', true);
    await turn();
    assert.deepEqual(n1.controls, []);
    assert.equal(n1.sent.filter((r) => r.id === onN1.id).length, 1);
    n1.events.onFrames([result(onN1.id)]);
    assert.equal((onN1.sink as Sink).results, 1);
    await ep.close();
  });

  test('while the gateway fails over to another NATS server new requests wait; once back, those in flight are sent again', async () => {
    const { ep, n1, n2, onN1, onN2 } = await twoNodes();
    ep.clusterInterrupted();
    const waiting = new Sink();
    const late = call(waiting);
    ep.submit(late);
    await turn();
    assert.equal(ep.queued, 1, 'it waits instead of failing');
    assert.deepEqual(waiting.errors, []);
    assert.ok(![...n1.sent, ...n2.sent].some((r) => r.id === late.id), 'nothing is sent while the connection is down');
    ep.setClusterReachable(true);
    assert.deepEqual(n1.controls, [{ t: 'cancel', id: onN1.id }]);
    assert.deepEqual(n2.controls, [{ t: 'cancel', id: onN2.id }]);
    await turn();
    // Both in flight again (one slot per replica); the late one waits its turn.
    assert.equal(n1.sent.filter((r) => r.id === onN1.id).length + n2.sent.filter((r) => r.id === onN1.id).length, 2);
    assert.equal(ep.inFlight, 2);
    assert.equal(ep.queued, 1);
    const link = onN1.replica!.link as ScriptedLink;
    link.events.onFrames([result(onN1.id)]);
    assert.equal((onN1.sink as Sink).results, 1);
    await turn();
    assert.equal(ep.queued, 0, 'the late request runs once a slot is free');
    await ep.close();
  });
});

describe('Endpoint on a fake clock', () => {
  test('a deadline sweep fails a running request at its deadline and cancels it on its replica', async () => {
    const clock = new FakeClock();
    const factory = new Factory();
    const ep = endpoint({}, factory, clock);
    ep.reconcile();
    await turn();
    const sink = new Sink();
    const c = call(sink, clock, 100);
    ep.submit(c);
    await turn();
    clock.advance(80);
    assert.equal(sink.errors.length, 0, 'nothing before the deadline');
    clock.advance(40);
    assert.deepEqual(sink.errors.map((e) => e.code), ['SY_DEADLINE_EXCEEDED']);
    assert.deepEqual(factory.links[0]!.controls, [{ t: 'cancel', id: c.id }]);
    assert.equal(ep.inFlight, 0);
    await ep.close();
  });

  test('a queued request expires too, and a stream that started is exempt', async () => {
    const clock = new FakeClock();
    const factory = new Factory();
    const ep = endpoint({ max_concurrency: 1 }, factory, clock);
    ep.reconcile();
    await turn();
    const streamSink = new Sink();
    const stream = call(streamSink, clock, 100, true);
    ep.submit(stream);
    const queuedSink = new Sink();
    ep.submit(call(queuedSink, clock, 100));
    assert.equal(ep.queued, 1);
    await turn();
    factory.links[0]!.events.onFrames([{ t: 'start', id: stream.id }]);
    clock.advance(200);
    assert.deepEqual(queuedSink.errors.map((e) => e.code), ['SY_DEADLINE_EXCEEDED']);
    assert.deepEqual(streamSink.errors, [], 'the stream runs on past its deadline');
    assert.equal(ep.queued, 0);
    factory.links[0]!.events.onFrames([{ t: 'end', id: stream.id }]);
    await ep.close();
  });

  test('failed starts back off 0.5 s, 1 s, 2 s; a success resets the schedule', async () => {
    const clock = new FakeClock();
    const factory = new Factory(false);
    const ep = endpoint({}, factory, clock);
    ep.reconcile();
    assert.equal(factory.links.length, 1);
    for (const [i, backoff] of [500, 1000, 2000].entries()) {
      factory.links[i]!.failStart();
      await turn();
      assert.match(ep.lastStartError ?? '', /setup aborted/);
      clock.advance(backoff - 1);
      assert.equal(factory.links.length, i + 1, `no start before ${backoff} ms`);
      clock.advance(1);
      assert.equal(factory.links.length, i + 2, `a start after ${backoff} ms`);
    }
    await ep.close();
  });

  test('the only replica failing to start answers the waiting requests SY_NO_REPLICA at once', async () => {
    const clock = new FakeClock();
    const factory = new Factory(false);
    const ep = endpoint({}, factory, clock);
    ep.reconcile();
    const sink = new Sink();
    ep.submit(call(sink, clock));
    factory.links[0]!.failStart();
    await turn();
    assert.deepEqual(sink.errors.map((e) => e.code), ['SY_NO_REPLICA']);
    assert.equal(ep.queued, 0);
    await ep.close();
  });

  test('a request whose replica is lost is retried on another within its deadline, not after it', async () => {
    const clock = new FakeClock();
    const factory = new Factory();
    const ep = endpoint({ replicas: 2, max_concurrency: 1 }, factory, clock);
    ep.reconcile();
    await turn();
    const [a, b] = factory.links as [ScriptedLink, ScriptedLink];
    const retried = new Sink();
    const first = call(retried, clock, 1_000);
    ep.submit(first);
    await turn();
    const on = a.sent.some((r) => r.id === first.id) ? a : b;
    on.events.onLost('worker thread exited');
    await turn();
    const other = on === a ? b : a;
    assert.ok(other.sent.some((r) => r.id === first.id), 'the request went to the other replica');
    assert.equal(retried.errors.length, 0);
    other.events.onFrames([{ t: 'result', id: first.id, body: new Uint8Array(), contentType: 'application/json' }]);
    assert.equal(retried.results, 1);

    // The deadline passes between the request's sweep ticks: a loss then is final.
    const late = new Sink();
    const second = call(late, clock, 1_000);
    ep.submit(second);
    await turn();
    const holder = factory.links.find((l) => l.sent.some((r) => r.id === second.id))!;
    clock.advance(990);
    clock.jump(15); // past the deadline, before the next sweep (a busy event loop)
    holder.events.onLost('worker thread exited');
    assert.deepEqual(late.errors.map((e) => e.code), ['SY_REPLICA_LOST']);
    await ep.close();
  });

  test('the concurrency integral is in-flight plus queued requests times time, exactly', async () => {
    const clock = new FakeClock();
    const factory = new Factory();
    const ep = endpoint({ max_concurrency: 1 }, factory, clock);
    ep.reconcile();
    await turn();
    const start = ep.signals().concurrencyIntegral;
    const running = call(new Sink(), clock);
    ep.submit(running);
    clock.advance(100); // 1 request for 100 ms
    ep.submit(call(new Sink(), clock));
    clock.advance(50); // 2 (one running, one queued) for 50 ms
    await turn();
    factory.links[0]!.events.onFrames([{ t: 'result', id: running.id, body: new Uint8Array(), contentType: 'application/json' }]);
    clock.advance(10); // the queued one runs: 1 for 10 ms
    const signals = ep.signals();
    assert.equal(signals.concurrencyIntegral - start, 100 + 2 * 50 + 10);
    assert.equal(signals.arrivals, 2);
    assert.deepEqual([signals.inFlight, signals.queued], [1, 0]);
    await ep.close();
  });
});

describe('Endpoint: replicas that stop answering or keep dying (fake clock)', () => {
  test('a replica that does not confirm a cancel within abort_grace_ms is wedged: terminated, replaced, its requests retried', async () => {
    const clock = new FakeClock();
    const factory = new Factory(true, true);
    const ep = endpoint({ abort_grace_ms: 200 }, factory, clock);
    ep.reconcile();
    await turn();
    const stuck = factory.links[0]!;
    const timedOut = new Sink();
    const late = call(timedOut, clock, 100);
    ep.submit(late);
    const bystander = new Sink();
    const other = call(bystander, clock, 10_000);
    ep.submit(other);
    await turn();
    clock.advance(120);
    assert.deepEqual(timedOut.errors.map((e) => e.code), ['SY_DEADLINE_EXCEEDED']);
    assert.match(timedOut.errors[0]!.message, /running on replica e\/cpu\/1; the replica was told to stop the work and is replaced if it does not within 200 ms/);
    assert.equal(ep.replicas[0]!.routable, false, 'no new work while the cancel is unconfirmed');
    clock.advance(200);
    assert.deepEqual(stuck.stops, [{ now: true }], 'terminated at once, without a graceful stop');
    assert.equal(factory.links.length, 2, 'a replacement is starting');
    await turn();
    await turn();
    assert.ok(factory.links[1]!.sent.some((r) => r.id === other.id), 'the other request was retried on the replacement');
    assert.equal(bystander.errors.length, 0);
    assert.equal(ep.view().replaced.wedged, 1);
    await ep.close();
  });

  test('a confirmed cancel frees the replica; nothing is replaced', async () => {
    const clock = new FakeClock();
    const factory = new Factory(true, true);
    const ep = endpoint({ abort_grace_ms: 200 }, factory, clock);
    ep.reconcile();
    await turn();
    const c = call(new Sink(), clock, 100);
    ep.submit(c);
    await turn();
    clock.advance(120);
    assert.equal(ep.replicas[0]!.routable, false);
    assert.deepEqual([ep.view().replicas[0]!.in_flight, ep.view().replicas[0]!.parked], [1, 0], 'the unconfirmed request holds its slot; nothing is parked');
    factory.links[0]!.events.onFrames([{ t: 'cancelled', id: c.id }]);
    assert.equal(ep.replicas[0]!.routable, true);
    clock.advance(1_000);
    assert.equal(factory.links.length, 1);
    assert.deepEqual(factory.links[0]!.stops, []);
    await ep.close();
  });

  test('a request that timed out counts in its replica latency, so a replica that stops answering never looks fast', async () => {
    const clock = new FakeClock();
    const factory = new Factory(); // remote-like: no cancel confirmations
    const ep = endpoint({ replicas: 2 }, factory, clock);
    ep.reconcile();
    await turn();
    const answered = call(new Sink(), clock, 10_000);
    const timedOut = call(new Sink(), clock, 1_000);
    ep.submit(answered);
    ep.submit(timedOut);
    await turn();
    const holderOf = (c: Call) => factory.links.find((l) => l.sent.some((r) => r.id === c.id))!;
    clock.advance(2);
    holderOf(answered).events.onFrames([{ t: 'result', id: answered.id, body: new Uint8Array(), contentType: 'application/json' }]);
    clock.advance(1_100);
    const latency = (link: ScriptedLink) => ep.replicas.find((r) => r.link === link)!.latencyMs;
    assert.ok(latency(holderOf(timedOut)) >= 100, `the silent replica measures ${latency(holderOf(timedOut))} ms`);
    assert.ok(latency(holderOf(timedOut)) > 10 * latency(holderOf(answered)));
    await ep.close();
  });

  test('repeated deaths back off; meanwhile requests get 503 SY_NO_REPLICA with Retry-After at once', async () => {
    const clock = new FakeClock();
    const factory = new Factory();
    const ep = endpoint({}, factory, clock);
    ep.reconcile();
    await turn();
    factory.links[0]!.events.onLost('worker thread exited');
    assert.equal(factory.links.length, 2, 'the first death is replaced at once');
    await turn();
    factory.links[1]!.events.onLost('worker thread exited');
    assert.equal(factory.links.length, 2, 'the second waits');
    const sink = new Sink();
    ep.submit(call(sink, clock));
    assert.deepEqual(sink.errors.map((e) => [e.code, e.status, e.retryAfterS]), [['SY_NO_REPLICA', 503, 1]]);
    assert.equal(ep.queued, 0);
    clock.advance(500);
    assert.equal(factory.links.length, 3, 'restarted after 0.5 s');
    await turn();
    const waiting = new Sink();
    ep.submit(call(waiting, clock));
    assert.equal(waiting.errors.length, 0, 'a ready replica serves again');
    await ep.close();
  });

  test('the death backoff grows and forgets deaths outside its window', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 20].map(deathBackoffMs), [0, 500, 1_000, 2_000, 4_000, 30_000]);
    let now = 0;
    const backoff = new RestartBackoff(() => now);
    backoff.died();
    assert.equal(backoff.waitMs(), 0);
    backoff.died();
    assert.equal(backoff.waitMs(), 500);
    now += DEATH_WINDOW_MS + 1;
    backoff.died();
    assert.equal(backoff.waitMs(), 0, 'a death after a quiet window is a first death again');
  });
});
