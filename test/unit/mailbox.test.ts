import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { createMailbox, Inbox, Mailbox, MAILBOX_BYTES } from '../../workers/pool/mailbox.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

/** A sender (port + mailbox) and a receiver (inbox) on one thread: posts are queued synchronously, so reads are deterministic. */
function pair(): { send: (n: number) => void; put: (n: number) => boolean; inbox: Inbox<unknown>; got: number[]; close: () => void } {
  const { port1, port2 } = new MessageChannel();
  const buffer = createMailbox();
  const senderBox = new Mailbox(buffer);
  const got: number[] = [];
  const inbox = new Inbox<unknown>(port2, new Mailbox(buffer), (message) => {
    got.push(message instanceof Uint8Array ? message[0]! : (message as number));
  });
  return {
    send(n) {
      port1.postMessage(n);
      senderBox.notePosted();
    },
    put: (n) => senderBox.put(bytes(n)),
    inbox,
    got,
    close() {
      port1.close();
      port2.close();
    },
  };
}

test('a mailbox takes one message only while its receiver polls, and never one too large', () => {
  const buffer = createMailbox();
  const sender = new Mailbox(buffer);
  const receiver = new Mailbox(buffer);
  assert.equal(sender.put(bytes(1)), false, 'shut: the receiver is not polling');
  receiver.open();
  assert.equal(receiver.isOpen, true);
  assert.equal(sender.put(new Uint8Array(MAILBOX_BYTES + 1)), false, 'too large: it goes on the port');
  for (let i = 0; i < 3; i++) sender.notePosted();
  assert.equal(sender.put(bytes(7, 8, 9)), true);
  assert.equal(receiver.isOpen, false, 'full');
  assert.equal(sender.put(bytes(2)), false, 'one message at a time');
  const boxed = receiver.close();
  assert.deepEqual(boxed && [...boxed.message], [7, 8, 9]);
  assert.equal(boxed?.postedBefore, 3);
  assert.equal(receiver.close(), undefined, 'taken once');
  receiver.open();
  assert.equal(receiver.close(), undefined, 'closed empty');
  assert.equal(sender.put(bytes(1)), false, 'shut again');
});

test("the mailbox's message comes out after the port messages sent before it and before those sent after", () => {
  const p = pair();
  p.send(1);
  p.inbox.box.open();
  p.send(2);
  assert.equal(p.put(3), true);
  p.send(4);
  p.send(5);
  assert.equal(p.inbox.settle(), true);
  assert.deepEqual(p.got, [1, 2, 3, 4, 5]);
  p.close();
});

test('a mailbox message sent before any post comes first, and a port message already taken keeps its place', () => {
  const p = pair();
  p.inbox.box.open();
  assert.equal(p.put(1), true);
  p.send(2);
  p.send(3);
  // The receiver took the first port message before it looked at its mailbox.
  const first = p.inbox.fromPortNow();
  assert.ok(first);
  p.inbox.settle(first);
  assert.deepEqual(p.got, [1, 2, 3]);

  const q = pair();
  q.send(1);
  q.inbox.box.open();
  assert.equal(q.put(2), true);
  const taken = q.inbox.fromPortNow();
  assert.ok(taken);
  q.inbox.settle(taken);
  assert.deepEqual(q.got, [1, 2]);
  p.close();
  q.close();
});

test('settle with nothing sent delivers nothing and leaves the mailbox shut', () => {
  const p = pair();
  p.inbox.box.open();
  assert.equal(p.inbox.settle(), false);
  assert.deepEqual(p.got, []);
  assert.equal(p.put(1), false);
  p.close();
});
