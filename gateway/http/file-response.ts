/**
 * Sends a file the predictor wrote: Content-Type and Content-Length, `Range` (one range: 206, or
 * 416), read from disk in large chunks straight into the socket with tryEnd/onWritable, so a
 * slow client holds at most one chunk in memory. No strings, no base64.
 *
 * The file arrives as a descriptor the replica opened and checked (workers/pool/output-files.ts);
 * it is never opened again by name here, so a name swapped for a symlink after `predict` returned
 * cannot redirect what is served. This function owns the descriptor and always closes it.
 */
import { close, read, unlink } from 'node:fs';
import type { HttpResponse } from '../../native/uws.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { writeError } from './respond.js';
import { sendSliced, SLICE_BYTES, type SliceState } from './sliced-body.js';
import { statusLine } from './status-lines.js';

const CHUNK_BYTES = 512 * 1024;

export interface ByteRange {
  start: number;
  end: number; // inclusive
}

/** Parses a single `bytes=` range against `size`; undefined when absent or not a bytes range we serve; null when unsatisfiable. */
export function parseRange(header: string, size: number): ByteRange | undefined | null {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return null;
  return { start, end };
}

export interface FileSendState {
  aborted: boolean;
  /** Set while waiting for the socket; the transport calls it when the client goes away. */
  onAbort?: (() => void) | undefined;
  /** The stall clock (stall-watch.ts): bytes wait for the socket, it took some, none wait any more. */
  onBlocked?(): void;
  onProgress?(): void;
  onUnblocked?(): void;
}

/** Writes the head of a file answer (200, or 206 for a range): called inside the cork of the first bytes. */
function headWriter(res: HttpResponse, contentType: string, range: ByteRange | undefined, size: number): () => void {
  return () => {
    res.writeStatus(statusLine(range ? 206 : 200));
    res.writeHeader('content-type', contentType);
    res.writeHeader('accept-ranges', 'bytes');
    if (range) res.writeHeader('content-range', `bytes ${range.start}-${range.end}/${size}`);
  };
}

function writeUnsatisfiable(res: HttpResponse, size: number): void {
  res.cork(() => writeError(res, new SwitchyardError('SY_RANGE_NOT_SATISFIABLE', `the file has ${size} bytes`), { 'content-range': `bytes */${size}` }));
}

/**
 * Sends a file whose bytes a predictor returned (moved from its thread, never written to disk):
 * the same head and Range answers as a file on disk, written from memory in slices.
 */
export function sendFileBytes(res: HttpResponse, state: SliceState, bytes: Uint8Array, contentType: string, rangeHeader: string): void {
  if (state.aborted) return;
  const size = bytes.byteLength;
  const range = parseRange(rangeHeader, size);
  if (range === null) {
    writeUnsatisfiable(res, size);
    return;
  }
  const body = range ? bytes.subarray(range.start, range.end + 1) : bytes;
  const writeHead = headWriter(res, contentType, range, size);
  if (body.byteLength > SLICE_BYTES) {
    sendSliced(res, body, writeHead, state);
    return;
  }
  res.cork(() => {
    writeHead();
    res.end(body);
  });
}

/** Reusable read buffers: a fresh 512 KiB buffer per response costs page faults and GC. */
const spareBuffers: Buffer[] = [];
const MAX_SPARE_BUFFERS = 16;

function takeBuffer(): Buffer {
  return spareBuffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
}

function giveBack(buffer: Buffer): void {
  if (spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
}

// The callback API on a plain descriptor: FileHandle's promise machinery costs more than the read.
const readAt = (fd: number, buffer: Buffer, length: number, position: number) =>
  new Promise<number>((resolve, reject) => read(fd, buffer, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
const closeFile = (fd: number) => new Promise<void>((resolve) => close(fd, () => resolve()));
const removeFile = (path: string) => new Promise<void>((resolve) => unlink(path, () => resolve()));

export async function sendFile(
  res: HttpResponse,
  state: FileSendState,
  file: { path: string; fd: number; size: number; contentType: string; remove: boolean },
  rangeHeader: string,
): Promise<void> {
  const fd = file.fd;
  let buffer: Buffer | undefined;
  try {
    const range = parseRange(rangeHeader, file.size);
    if (range === null) {
      if (!state.aborted) writeUnsatisfiable(res, file.size);
      return;
    }
    const start = range ? range.start : 0;
    const total = range ? range.end - range.start + 1 : file.size;
    if (state.aborted) return;
    // Written in the same cork as the first bytes: one packet for the head and the start of the body.
    const writeHead = headWriter(res, file.contentType, range, file.size);
    if (total === 0) {
      res.cork(() => {
        writeHead();
        res.end();
      });
      return;
    }
    let sent = 0;
    buffer = takeBuffer();
    while (sent < total && !state.aborted) {
      const want = Math.min(buffer.byteLength, total - sent);
      const bytesRead = await readAt(fd, buffer, want, start + sent);
      if (bytesRead === 0) throw new Error('the file shrank while it was being sent');
      if (state.aborted) return;
      const chunk = buffer.subarray(0, bytesRead);
      let ok = false;
      let done = false;
      const first = sent === 0;
      const offsetBefore = res.getWriteOffset();
      res.cork(() => {
        if (first) writeHead();
        [ok, done] = res.tryEnd(chunk, total);
      });
      sent += bytesRead;
      if (done) return;
      if (!ok) {
        // uWS kept what it could not send at once; wait until the socket takes the rest.
        state.onBlocked?.();
        const written = await new Promise<boolean>((resolve) => {
          state.onAbort = () => resolve(false);
          res.onWritable((offset) => {
            state.onProgress?.();
            const rest = chunk.subarray(offset - offsetBefore);
            const [ok2, done2] = res.tryEnd(rest, total);
            if (done2 || ok2) resolve(true);
            return ok2;
          });
        });
        state.onAbort = undefined;
        state.onUnblocked?.();
        if (!written) return;
      }
    }
  } catch {
    // Headers may be out already: cut the connection so the client sees an incomplete body.
    if (!state.aborted) res.close();
  } finally {
    await closeFile(fd);
    if (buffer) giveBack(buffer);
    if (file.remove) await removeFile(file.path);
  }
}
