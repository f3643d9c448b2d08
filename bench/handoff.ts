/**
 * `npm run bench:handoff`: what it costs to hand a small request to a worker thread and get its
 * answer back, for each way two threads can talk, at 1 and at 100 messages in flight.
 *
 * The message is what the gateway sends for an echo request (a one-request batch: id, a 16-byte
 * JSON body, deadline, headers) and the answer what a replica sends back (a one-frame batch with
 * the encoded result). The worker does nothing else, so what is measured is the channel: encoding,
 * posting, waking the other thread, decoding. Answers that arrive together go back out together
 * (one message per batch each way), as the gateway and the replica batch per event-loop turn.
 *
 * Channels:
 * - port-msgpack: a MessagePort, msgpack in a transferred ArrayBuffer (the replica link today)
 * - port-clone: a MessagePort, the objects structured-cloned
 * - ring-waitasync: msgpack records in a SharedArrayBuffer ring each way; both sides sleep with
 *   Atomics.waitAsync, so both event loops stay free (what an async predictor needs)
 * - ring-spin: as ring-waitasync, but the worker polls the ring for up to --spin-us before sleeping
 * - ring-wait: the worker blocks in Atomics.wait (its event loop never runs: no timers, no async
 *   predictor) and the main thread sleeps with waitAsync; the floor for a ring
 * - port-park: port-msgpack, but the idle worker parks in Atomics.wait (as piscina's
 *   `atomics: 'sync'` does between tasks) and the sender notifies after posting; woken, the worker
 *   reads the port with receiveMessageOnPort. Its event loop does not run while it is parked.
 * - mailbox-poll: what the replica link does (workers/pool/mailbox.ts, idle-park.ts, polling.ts):
 *   port-park, but a lone message goes through a one-message SharedArrayBuffer mailbox while the
 *   worker polls for it, and the main thread polls for a lone answer (up to --spin-us) in its own
 *   mailbox; both poll only while the machine has a core to spare.
 *
 * Columns: round trips per second, round-trip p50/p99 in µs (per message, from its send to its
 * answer), and CPU µs per round trip (both threads: process.cpuUsage), which is what a busy-poll
 * hides. Usage: node dist/bench/handoff.js [--duration s] [--channels a,b] [--depths 1,100] [--spin-us n]
 */
import { isMainThread, Worker, workerData, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { Packr } from 'msgpackr';
import { ownPacked, pack, packOwned, unpack } from '../workers/protocol/envelopes.js';
import { createMailbox, Inbox, Mailbox } from '../workers/pool/mailbox.js';
import { createParking, IdleParking, stopParking, wakeParked } from '../workers/pool/idle-park.js';
import { createPollers, Poller, watchSpareCores, type Pollers } from '../workers/pool/polling.js';
import { createLatencyHistogram, recordMs, summarize } from './lib/latency.js';
import { createRing, RingReader, RingWriter, type RingBuffers } from './lib/byte-ring.js';

const CHANNELS = ['port-msgpack', 'port-clone', 'port-park', 'mailbox-poll', 'ring-waitasync', 'ring-spin', 'ring-wait'] as const;
type ChannelName = (typeof CHANNELS)[number];

const RING_BYTES = 1 << 20;
const BODY = new TextEncoder().encode('{"text":"hello"}');
const CONTENT_TYPE = 'application/json';
/** Ring records keep bytes as copies: a view into the ring is overwritten by later records. */
const ringPackr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', copyBuffers: true });

interface Envelope {
  id: number;
  body: Uint8Array;
  bodyType: 'json';
  encoding: 'json';
  deadline: number;
  headers: Record<string, string>;
}
interface Frame {
  t: 'result';
  id: number;
  body: Uint8Array;
  contentType: string;
}

interface WorkerSetup {
  channel: ChannelName;
  port?: MessagePort;
  /** port-park: [0] a wake-up sequence, [1] 1 while the worker is parked; mailbox-poll: idle-park.ts's words. */
  park?: SharedArrayBuffer;
  toWorker?: RingBuffers;
  toMain?: RingBuffers;
  spinUs: number;
  /** mailbox-poll: the mailboxes each way, and the process's pollers. */
  requestBox?: SharedArrayBuffer;
  replyBox?: SharedArrayBuffer;
  pollers?: Pollers;
}

/** The replica's side: every request becomes one result frame; a batch in, a batch out. */
function answer(reqs: Envelope[]): Frame[] {
  return reqs.map((r) => ({ t: 'result', id: r.id, body: r.body, contentType: CONTENT_TYPE }));
}

const SEQ = 0;
const PARKED = 1;

function runWorker(setup: WorkerSetup): void {
  const { channel } = setup;
  if (channel === 'mailbox-poll') {
    const port = setup.port!;
    const replyBox = new Mailbox(setup.replyBox!);
    const serve = (msg: Uint8Array): void => {
      const packed = pack({ frames: answer(unpack<{ reqs: Envelope[] }>(msg).reqs) });
      if (replyBox.isOpen && replyBox.put(packed)) return;
      const owned = ownPacked(packed);
      port.postMessage(owned, [owned.buffer]);
      replyBox.notePosted();
    };
    const parker = new IdleParking(setup.park!, setup.pollers!, new Inbox<Uint8Array>(port, new Mailbox(setup.requestBox!), serve));
    port.on('close', () => process.exit(0));
    const loop = (): void => {
      parker.park(() => true);
      setImmediate(loop);
    };
    loop();
    return;
  }
  if (channel === 'port-park') {
    const port = setup.port!;
    const park = new Int32Array(setup.park!);
    const serve = (msg: Uint8Array): void => {
      const owned = packOwned({ frames: answer(unpack<{ reqs: Envelope[] }>(msg).reqs) });
      port.postMessage(owned, [owned.buffer]);
    };
    // The port stays open (and referenced) so the thread lives; messages are read synchronously.
    port.on('close', () => process.exit(0));
    for (;;) {
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) serve(m.message as Uint8Array);
      const seq = Atomics.load(park, SEQ);
      Atomics.store(park, PARKED, 1);
      const queued = receiveMessageOnPort(port);
      if (queued) {
        Atomics.store(park, PARKED, 0);
        serve(queued.message as Uint8Array);
        continue;
      }
      Atomics.wait(park, SEQ, seq);
      Atomics.store(park, PARKED, 0);
    }
  }
  if (channel === 'port-msgpack' || channel === 'port-clone') {
    const port = setup.port!;
    port.on('message', (msg: Uint8Array | { reqs: Envelope[] }) => {
      if (channel === 'port-clone') {
        port.postMessage({ frames: answer((msg as { reqs: Envelope[] }).reqs) });
      } else {
        const owned = packOwned({ frames: answer(unpack<{ reqs: Envelope[] }>(msg as Uint8Array).reqs) });
        port.postMessage(owned, [owned.buffer]);
      }
    });
    return;
  }
  const reader = new RingReader(setup.toWorker!);
  const writer = new RingWriter(setup.toMain!);
  const serve = (record: Uint8Array): void => {
    const { reqs } = ringPackr.unpack(record) as { reqs: Envelope[] };
    if (!writer.write(ringPackr.pack({ frames: answer(reqs) }))) throw new Error('the ring to the main thread is full');
  };
  if (channel === 'ring-wait') {
    for (;;) {
      reader.drain(serve);
      reader.sleep();
    }
  }
  // A pending Atomics.waitAsync does not keep a thread's event loop alive; a replica's own ports do.
  setInterval(() => undefined, 1 << 30);
  const spinNs = BigInt(setup.spinUs * 1000);
  const loop = (): void => {
    for (;;) {
      reader.drain(serve);
      if (channel === 'ring-spin') {
        const until = process.hrtime.bigint() + spinNs;
        while (!reader.pending && process.hrtime.bigint() < until);
        if (reader.pending) continue;
      }
      const sleeping = reader.sleepAsync();
      if (sleeping) {
        void sleeping.then(loop);
        return;
      }
    }
  };
  loop();
}

/** The gateway's side of one channel: send a batch, hear batches back. */
interface MainSide {
  send(reqs: Envelope[]): void;
  close(): Promise<void>;
}

async function openChannel(channel: ChannelName, spinUs: number, onFrames: (frames: Frame[]) => void): Promise<MainSide> {
  const file = new URL(import.meta.url);
  if (channel === 'mailbox-poll') return openMailboxChannel(file, spinUs, onFrames);
  if (channel === 'port-msgpack' || channel === 'port-clone' || channel === 'port-park') {
    const { port1, port2 } = new MessageChannel();
    const parkBuffer = new SharedArrayBuffer(8);
    const park = new Int32Array(parkBuffer);
    const worker = new Worker(file, { workerData: { channel, port: port2, park: parkBuffer, spinUs } satisfies WorkerSetup, transferList: [port2] });
    await new Promise((resolve) => worker.once('online', resolve));
    port1.on('message', (msg: Uint8Array | { frames: Frame[] }) => {
      onFrames(channel === 'port-clone' ? (msg as { frames: Frame[] }).frames : unpack<{ frames: Frame[] }>(msg as Uint8Array).frames);
    });
    return {
      send(reqs) {
        if (channel === 'port-clone') {
          port1.postMessage({ reqs });
        } else {
          const owned = packOwned({ reqs });
          port1.postMessage(owned, [owned.buffer]);
          if (channel === 'port-park' && Atomics.load(park, PARKED) === 1) {
            Atomics.add(park, SEQ, 1);
            Atomics.notify(park, SEQ);
          }
        }
      },
      async close() {
        port1.close();
        await worker.terminate();
      },
    };
  }
  const toWorker = createRing(RING_BYTES);
  const toMain = createRing(RING_BYTES);
  const worker = new Worker(file, { workerData: { channel, toWorker, toMain, spinUs } satisfies WorkerSetup });
  await new Promise((resolve) => worker.once('online', resolve));
  const writer = new RingWriter(toWorker);
  const reader = new RingReader(toMain);
  let closed = false;
  const receive = (record: Uint8Array): void => onFrames((ringPackr.unpack(record) as { frames: Frame[] }).frames);
  const loop = (): void => {
    while (!closed) {
      reader.drain(receive);
      const sleeping = reader.sleepAsync();
      if (sleeping) {
        void sleeping.then(loop);
        return;
      }
    }
  };
  loop();
  return {
    send(reqs) {
      if (!writer.write(ringPackr.pack({ reqs }))) throw new Error('the ring to the worker is full');
    },
    async close() {
      closed = true;
      await worker.terminate();
    },
  };
}

/** The main side of mailbox-poll, as workers/pool/thread-link.ts does it. */
async function openMailboxChannel(file: URL, spinUs: number, onFrames: (frames: Frame[]) => void): Promise<MainSide> {
  const { port1, port2 } = new MessageChannel();
  const parkBuffer = createParking();
  const parking = new Int32Array(parkBuffer);
  const requestBox = createMailbox();
  const replyBox = createMailbox();
  const pollers = createPollers();
  const stopWatching = watchSpareCores(pollers);
  const poller = new Poller(pollers);
  const setup: WorkerSetup = { channel: 'mailbox-poll', port: port2, park: parkBuffer, spinUs, requestBox, replyBox, pollers };
  const worker = new Worker(file, { workerData: setup, transferList: [port2] });
  await new Promise((resolve) => worker.once('online', resolve));
  const requests = new Mailbox(requestBox);
  const inbox = new Inbox<Uint8Array>(port1, new Mailbox(replyBox), (msg) => onFrames(unpack<{ frames: Frame[] }>(msg).frames));
  const awaitAnswer = (before: number): void => {
    inbox.box.open();
    poller.poll(() => !inbox.box.isOpen || inbox.box.posted !== before, performance.now() + spinUs / 1000);
    inbox.settle();
  };
  return {
    send(reqs) {
      const before = inbox.box.posted;
      const packed = pack({ reqs });
      if (!(requests.isOpen && requests.put(packed))) {
        const owned = ownPacked(packed);
        port1.postMessage(owned, [owned.buffer]);
        requests.notePosted();
      }
      wakeParked(parking);
      if (reqs.length === 1 && spinUs > 0 && poller.allowed) queueMicrotask(() => awaitAnswer(before));
    },
    async close() {
      stopWatching();
      stopParking(parking);
      port1.close();
      await worker.terminate();
    },
  };
}

interface Measured {
  channel: ChannelName;
  depth: number;
  roundTripsPerS: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerRoundTrip: number;
}

async function measure(channel: ChannelName, depth: number, durationS: number, spinUs: number): Promise<Measured> {
  const histogram = createLatencyHistogram();
  const sentAt = new Map<number, number>();
  let nextId = 0;
  let done = 0;
  let measuring = false;
  let stopping = false;
  let finish: () => void = () => undefined;
  const envelope = (): Envelope => {
    const id = ++nextId;
    sentAt.set(id, performance.now());
    return { id, body: BODY, bodyType: 'json', encoding: 'json', deadline: Date.now() + 30_000, headers: {} };
  };
  const side = await openChannel(channel, spinUs, (frames) => {
    const now = performance.now();
    for (const frame of frames) {
      const at = sentAt.get(frame.id);
      sentAt.delete(frame.id);
      if (measuring && at !== undefined) {
        recordMs(histogram, now - at);
        done++;
      }
    }
    if (stopping) {
      if (sentAt.size === 0) finish();
      return;
    }
    side.send(frames.map(envelope));
  });
  const fill = (): void => side.send(Array.from({ length: depth }, envelope));
  // Warm-up: a second of traffic so both threads run optimized code.
  fill();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, durationS * 1000));
  measuring = false;
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const count = done;
  stopping = true;
  await new Promise<void>((resolve) => {
    finish = resolve;
    if (sentAt.size === 0) resolve();
  });
  await side.close();
  const s = summarize(histogram);
  histogram.destroy();
  return {
    channel,
    depth,
    roundTripsPerS: count / elapsedS,
    p50Us: s.p50 * 1000,
    p99Us: s.p99 * 1000,
    cpuUsPerRoundTrip: count > 0 ? (cpu.user + cpu.system) / count : 0,
  };
}

function render(rows: Measured[], command: string, load: string): string {
  const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const lines = [
    `Command: \`${command}\` · ${cpus().length} cores · Node ${process.version} · load average ${load}`,
    '',
    '| channel | in flight | round trips/s | vs port-msgpack | p50 µs | p99 µs | CPU µs per round trip |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const base = rows.find((r) => r.channel === 'port-msgpack' && r.depth === row.depth);
    const ratio = base && base.roundTripsPerS > 0 ? `${(row.roundTripsPerS / base.roundTripsPerS).toFixed(2)}×` : '';
    lines.push(`| ${row.channel} | ${row.depth} | ${fmt(row.roundTripsPerS)} | ${ratio} | ${fmt(row.p50Us)} | ${fmt(row.p99Us)} | ${fmt(row.cpuUsPerRoundTrip, 1)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '3' },
      channels: { type: 'string', default: CHANNELS.join(',') },
      depths: { type: 'string', default: '1,100' },
      'spin-us': { type: 'string', default: '50' },
    },
  });
  const durationS = Number(values.duration);
  if (!(durationS > 0)) throw new Error(`--duration must be a positive number of seconds (got "${values.duration}")`);
  const spinUs = Number(values['spin-us']);
  if (!Number.isInteger(spinUs) || spinUs < 0) throw new Error(`--spin-us must be a non-negative integer (got "${values['spin-us']}")`);
  const channels = values.channels.split(',').map((c) => c.trim());
  for (const c of channels) if (!(CHANNELS as readonly string[]).includes(c)) throw new Error(`--channels: no channel "${c}" (known: ${CHANNELS.join(', ')})`);
  const depths = values.depths.split(',').map(Number);
  for (const d of depths) if (!Number.isInteger(d) || d <= 0) throw new Error(`--depths must be positive integers (got "${values.depths}")`);
  const rows: Measured[] = [];
  const loads: number[] = [];
  for (const depth of depths) {
    for (const channel of channels as ChannelName[]) {
      const row = await measure(channel, depth, durationS, spinUs);
      loads.push(loadavg()[0]!);
      process.stderr.write(`${channel} @${depth}: ${Math.round(row.roundTripsPerS)} round trips/s, p50 ${row.p50Us} µs\n`);
      rows.push(row);
    }
  }
  const load = `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`;
  process.stdout.write(render(rows, ['node', 'dist/bench/handoff.js', ...process.argv.slice(2)].join(' '), load) + '\n');
}

if (isMainThread) await main();
else runWorker(workerData as WorkerSetup);
