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
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import type { ControlMessage, RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink, ReplicaLinkEvents } from '../../workers/protocol/link.js';
import { tempDir } from '../helpers/gateway.js';

class FakeLink implements ReplicaLink {
  readonly endpoint = 'e';
  readonly device = 'cpu';
  readonly node = 'local';
  readonly region = 'local';
  sent: RequestEnvelope[] = [];
  controls: ControlMessage[] = [];
  events!: ReplicaLinkEvents;
  private settleStart!: (ok: boolean) => void;
  constructor(readonly replicaId: string, private readonly autoStart = true) {}
  start(events: ReplicaLinkEvents): Promise<void> {
    this.events = events;
    if (this.autoStart) return Promise.resolve();
    return new Promise((resolve, reject) => (this.settleStart = (ok) => (ok ? resolve() : reject(new Error('setup aborted: the thread was destroyed')))));
  }
  failStart(): void {
    this.settleStart(false);
  }
  send(reqs: RequestEnvelope[]): void {
    this.sent.push(...reqs);
  }
  control(msg: ControlMessage): void {
    this.controls.push(msg);
  }
  async stop(): Promise<void> {}
}

class Factory implements ReplicaFactory {
  links: FakeLink[] = [];
  constructor(private readonly autoStart = true) {}
  create(_e: string, _c: unknown, count: number): ReplicaLink[] {
    const made = Array.from({ length: count }, () => new FakeLink(`e/cpu/${this.links.length + 1}`, this.autoStart));
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
  onChunk(): void {}
  onStreamEnd(): void {}
  onError(err: SwitchyardError): void {
    this.errors.push(err);
  }
}

let ids = 1;
function call(sink = new Sink()): Call {
  return new Call({ id: ids++, encoding: 'json', deadline: Date.now() + 60_000 }, sink, ['local'], performance.now());
}

function endpoint(fields: Record<string, unknown>, factory: Factory): Endpoint {
  const config = validateConfig({ endpoints: { e: { predictor: '/p.js', ...fields } } }).endpoints.e!;
  return new Endpoint('e', config, factory, observer);
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('Endpoint', () => {
  test('a request cancelled in the turn it arrived is never sent, and no cancel is needed', async () => {
    const factory = new Factory();
    const ep = endpoint({}, factory);
    ep.reconcile();
    await turn();
    const c = call();
    ep.submit(c);
    ep.cancel(c);
    await turn();
    assert.deepEqual(factory.links[0]!.sent, []);
    assert.deepEqual(factory.links[0]!.controls, []);
    assert.equal(ep.inFlight, 0);
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
