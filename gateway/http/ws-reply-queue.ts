/**
 * One WebSocket's replies on their way out, in order (websocket.ts says why): sent corked, once
 * per turn, only while uWS buffers less than HIGH_WATER. A stream chunk's credit is acknowledged
 * once it was sent and the socket is below that mark with nothing left queued, in one
 * acknowledgement per stream per flush, so a slow reader pauses the generators feeding it.
 */
import type { WebSocket } from '../../native/uws.js';
import type { Call } from '../endpoints/call.js';
import { noteLargePayload } from '../../workers/pool/memory-reclaim.js';
import { OUT_OF_BAND_BYTES } from '../../workers/pool/payload-transfer.js';
import type { ReplyFrame } from './ws-messages.js';

/** Above this many buffered bytes a socket gets nothing more until it drains. */
export const HIGH_WATER = 1024 * 1024;

interface Outgoing {
  frame: ReplyFrame;
  bytes: number;
  /** The stream whose credit this chunk holds. */
  creditOf: Call | undefined;
}

export const frameBytes = (frame: ReplyFrame): number => (typeof frame.data === 'string' ? frame.data.length : frame.data.byteLength);

/** The most a message can add to uWS's buffer: its UTF-8 (at most 3 bytes per UTF-16 unit) and a frame header (at most 14 bytes). */
const maxWireBytes = (out: Outgoing): number => (typeof out.frame.data === 'string' ? 3 * out.bytes : out.bytes) + 14;

export class ReplyQueue {
  /** Bytes queued, not yet handed to uWS. */
  bytes = 0;
  private queue: Array<Outgoing | undefined> = [];
  private head = 0;
  /** Chunks sent and not yet acknowledged, per stream in order of sending. */
  private unacked: Array<{ call: Call; n: number }> = [];

  constructor(
    /** Gives `n` chunks of credit back to the stream's replica. */
    private readonly ack: (call: Call, n: number) => void,
  ) {}

  push(frame: ReplyFrame, creditOf: Call | undefined): void {
    const bytes = frameBytes(frame);
    this.bytes += bytes;
    this.queue.push({ frame, bytes, creditOf });
  }

  get empty(): boolean {
    return this.head === this.queue.length;
  }

  /** Sends what `ws` takes now (it buffers `buffered` bytes), then acknowledges the chunks sent if it is below the mark. */
  sendInto<T>(ws: WebSocket<T>, buffered: number): void {
    if (!this.empty && buffered < HIGH_WATER) {
      ws.cork(() => {
        // uWS's buffer grows by at most what is sent: it is read again only once the messages sent
        // since the last look could have taken it to HIGH_WATER (one native call per few thousand
        // small messages, not one per message), so the mark holds exactly as if read every time.
        let room = HIGH_WATER - buffered;
        while (this.head < this.queue.length) {
          const out = this.queue[this.head]!;
          const most = maxWireBytes(out);
          if (most >= room) {
            room = HIGH_WATER - ws.getBufferedAmount();
            if (room <= 0) break;
          }
          this.queue[this.head++] = undefined;
          this.bytes -= out.bytes;
          ws.send(out.frame.data, out.frame.binary);
          // uWS wrote or copied it: a large frame is garbage now, which the thread's reclaimer counts.
          if (out.bytes >= OUT_OF_BAND_BYTES) noteLargePayload(out.bytes);
          room -= most;
          if (out.creditOf) this.sentChunk(out.creditOf);
        }
      });
      if (this.empty) {
        this.queue = [];
        this.head = 0;
      } else if (this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
    }
    if (this.unacked.length > 0 && this.empty && ws.getBufferedAmount() < HIGH_WATER) {
      const unacked = this.unacked;
      this.unacked = [];
      for (const { call, n } of unacked) this.ack(call, n);
    }
  }

  /** The socket closed: what was queued will never be sent (garbage, which the reclaimer counts). */
  clear(): void {
    if (this.bytes > 0) noteLargePayload(this.bytes);
    this.bytes = 0;
    this.queue = [];
    this.head = 0;
    this.unacked = [];
  }

  /** Counts a sent chunk against its stream; a stream's consecutive chunks make one entry (one acknowledgement). */
  private sentChunk(call: Call): void {
    const last = this.unacked[this.unacked.length - 1];
    if (last !== undefined && last.call === call) last.n++;
    else this.unacked.push({ call, n: 1 });
  }
}
