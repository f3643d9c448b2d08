/**
 * A one-message mailbox in a SharedArrayBuffer: how a lone request reaches a replica thread that
 * is polling for work, and how its answer reaches a gateway thread that is polling for it, without
 * a system call on either side. A MessagePort post wakes the other thread's event loop through an
 * eventfd and epoll; on a virtual machine every one of those wake-ups and system calls is a trip
 * through the hypervisor, and at one request at a time they were most of what the gateway added
 * to raw uWS (bench/handoff.ts, bench/scenarios/latency.ts).
 *
 * The port stays the channel for everything else; the mailbox only carries a message while the
 * receiver is polling for one (it opens the mailbox, and takes the message or shuts it when it
 * stops polling). Order between the two channels holds through a count: the sender counts its
 * port posts in the mailbox's header, a message in the mailbox carries how many came before it,
 * and the receiver reads that many from its port first (they are already there: a post is queued
 * before it returns). A polling receiver also watches the count: a post means its answer may have
 * come the other way.
 *
 * Words: the state (SHUT: the receiver is not polling, OPEN: it is, CLAIMED: a sender is writing,
 * so the receiver never reads half a message, FULL: a message waits), the message's length, its
 * count of earlier posts, and the sender's count of port posts so far.
 */

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

const STATE = 0;
const LENGTH = 1;
const POSTED_BEFORE = 2;
const POSTED = 3;
const HEADER_BYTES = 4 * Int32Array.BYTES_PER_ELEMENT;

const SHUT = 0;
const OPEN = 1;
const CLAIMED = 2;
const FULL = 3;

/** Large enough for a small request or answer; anything longer takes the port. */
export const MAILBOX_BYTES = 16 * 1024;

export function createMailbox(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + MAILBOX_BYTES);
}

/** A message taken from a mailbox, and how many port messages its sender had posted before it. */
export interface Boxed {
  message: Uint8Array;
  postedBefore: number;
}

export class Mailbox {
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, 4);
    this.bytes = new Uint8Array(buffer, HEADER_BYTES);
  }

  // The receiver's side.

  /** Polling from now: a sender may put one message in. */
  open(): void {
    Atomics.store(this.words, STATE, OPEN);
  }

  /** Open, with nothing in it yet. */
  get isOpen(): boolean {
    return Atomics.load(this.words, STATE) === OPEN;
  }

  /** How many messages the sender has posted on the port (compare two readings for a change; it wraps). */
  get posted(): number {
    return Atomics.load(this.words, POSTED);
  }

  /**
   * Stops polling and returns the message put in meanwhile, if any (a copy: the mailbox is reused).
   * A sender caught writing is waited for; it is copying a few kilobytes.
   */
  close(): Boxed | undefined {
    let state = Atomics.compareExchange(this.words, STATE, OPEN, SHUT);
    while (state === CLAIMED) state = Atomics.load(this.words, STATE);
    if (state !== FULL) return undefined;
    const message = this.bytes.slice(0, Atomics.load(this.words, LENGTH));
    const postedBefore = Atomics.load(this.words, POSTED_BEFORE);
    Atomics.store(this.words, STATE, SHUT);
    return { message, postedBefore };
  }

  // The sender's side.

  /** Puts `message` in if the receiver polls and it fits; false: post it on the port instead, and say so (`notePosted`). */
  put(message: Uint8Array): boolean {
    if (message.byteLength > MAILBOX_BYTES) return false;
    if (Atomics.compareExchange(this.words, STATE, OPEN, CLAIMED) !== OPEN) return false;
    this.bytes.set(message);
    Atomics.store(this.words, LENGTH, message.byteLength);
    Atomics.store(this.words, POSTED_BEFORE, Atomics.load(this.words, POSTED));
    Atomics.store(this.words, STATE, FULL);
    return true;
  }

  /** The sender posted a message on the port (after the post: the receiver must find it there). */
  notePosted(): void {
    Atomics.add(this.words, POSTED, 1);
  }
}

/**
 * The receiving side of a port and a mailbox together: messages come out in the order they were
 * sent, whichever way each came. Every port message goes through here (its 'message' event, or a
 * read while polling), counted, so a boxed message's count says which port messages precede it.
 */
export class Inbox<M> {
  /** Port messages read so far (wraps at 2^31, like the sender's count: compared by difference). */
  private read = 0;

  constructor(
    private readonly port: MessagePort,
    readonly box: Mailbox,
    private readonly deliver: (message: M) => void,
  ) {
    port.on('message', (message: M) => this.fromPort(message));
  }

  /** A message waiting on the port now, taken off it (hand it to `settle`). */
  fromPortNow(): { message: unknown } | undefined {
    return receiveMessageOnPort(this.port);
  }

  /**
   * Stops polling the mailbox and delivers what came, in order: the mailbox's message, the port
   * messages sent before it, and everything else waiting on the port. `first`: a port message
   * already taken off the port. True when anything was delivered.
   */
  settle(first?: { message: unknown }): boolean {
    let boxed = this.box.close();
    if (first) {
      if (boxed && ((boxed.postedBefore - this.read) | 0) <= 0) {
        this.deliver(boxed.message as M);
        boxed = undefined;
      }
      this.fromPort(first.message as M);
    }
    if (boxed) {
      while (((boxed.postedBefore - this.read) | 0) > 0) {
        const earlier = receiveMessageOnPort(this.port);
        if (!earlier) break;
        this.fromPort(earlier.message as M);
      }
      this.deliver(boxed.message as M);
    }
    let delivered = first !== undefined || boxed !== undefined;
    for (let next = receiveMessageOnPort(this.port); next; next = receiveMessageOnPort(this.port)) {
      this.fromPort(next.message as M);
      delivered = true;
    }
    return delivered;
  }

  private fromPort(message: M): void {
    this.read = (this.read + 1) | 0;
    this.deliver(message);
  }
}
