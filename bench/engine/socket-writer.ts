/**
 * Writes a request's bytes on a socket with the least machinery.
 *
 * `socket.write` runs the Writable stream for every request: its state machine, a WriteWrap
 * request object, and a `process.nextTick` to finish the write. A load generator writes one small
 * pre-encoded request per answer, so that bookkeeping is a large part of its own cost per request.
 * Under a connected plain socket, the TCP handle's `writeBuffer` is what `socket.write` ends in:
 * it tries the `write` system call at once and queues with libuv only what the kernel did not take.
 * Calling it directly skips the stream. It needs node's WriteWrap class (from the `stream_wrap`
 * binding) for the queued case; where that is not available (another runtime, a future node), or
 * for TLS and sockets still connecting, `socket.write` is used. Both paths report a failed write the
 * same way: the socket is destroyed with an error that carries the system error code.
 */
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

interface WriteRequest {
  oncomplete: (this: WriteRequest, status: number) => void;
  /** The bytes of a queued write, kept referenced until it is done. */
  buffer: Uint8Array | null;
  socket: Socket;
}

interface TcpHandle {
  writeBuffer(request: WriteRequest, data: Uint8Array): number;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteRequest;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function loadBinding(): StreamWrapBinding | undefined {
  try {
    const binding = (process as unknown as { binding?: (name: string) => Partial<StreamWrapBinding> }).binding?.('stream_wrap');
    if (typeof binding?.WriteWrap === 'function' && binding.streamBaseState instanceof Int32Array && typeof binding.kLastWriteWasAsync === 'number') {
      return binding as StreamWrapBinding;
    }
  } catch {
    // No such binding here: socket.write it is.
  }
  return undefined;
}

/** Set SWITCHYARD_BENCH_STREAM_WRITES=1 to write through the stream (socket.write) only. */
const binding = process.env.SWITCHYARD_BENCH_STREAM_WRITES === '1' ? undefined : loadBinding();

function systemError(status: number): Error {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = 'EIO';
  }
  return Object.assign(new Error(`write ${code}`), { code, errno: status, syscall: 'write' });
}

function onQueuedWriteDone(this: WriteRequest, status: number): void {
  this.buffer = null;
  if (status < 0) this.socket.destroy(systemError(status));
}

/** Writes the requests of one socket. */
export class SocketWriter {
  /**
   * The request object handed to `writeBuffer`, made once: node reads only its `oncomplete`, and
   * only when a write had to be queued. A queued write keeps its object until it is done; the next
   * write gets a fresh one.
   */
  private request: WriteRequest | undefined;

  /** `plain`: a TCP socket (not TLS), whose handle is a libuv stream. */
  constructor(
    private readonly socket: Socket,
    private readonly plain: boolean,
  ) {}

  /**
   * Writes `data` (not modified until the write is done: requests are pre-encoded and immutable).
   * `connected`: 'connect' has fired; before that the stream queues the bytes.
   */
  write(data: Uint8Array, connected: boolean): void {
    const socket = this.socket;
    // A destroyed socket has no handle; socket.write then reports it as the stream does.
    const handle = connected && this.plain && binding !== undefined ? (socket as unknown as { _handle: TcpHandle | null })._handle : null;
    if (handle === null || typeof handle.writeBuffer !== 'function') {
      socket.write(data);
      return;
    }
    let request = this.request;
    if (request === undefined) {
      request = new binding!.WriteWrap();
      request.oncomplete = onQueuedWriteDone;
      request.buffer = null;
      request.socket = socket;
      this.request = request;
    }
    const status = handle.writeBuffer(request, data);
    if (status !== 0) {
      socket.destroy(systemError(status));
      return;
    }
    if (binding!.streamBaseState[binding!.kLastWriteWasAsync] !== 0) {
      // Queued with libuv (the kernel's buffer was full): this request object and the bytes stay with it.
      request.buffer = data;
      this.request = undefined;
    }
  }
}
