/**
 * The file-response example, after TensorOpera Deploy's image generator: it draws a PNG from
 * its input and, when the client sent `Accept: image/png` (the endpoint declares
 * `produces: [image/png]`), returns the PNG's bytes: the gateway serves them as the file, moved
 * from this thread without a copy and never written to disk (the fastest way to answer a file;
 * its remembered images live in shared memory, so they are not even moved).
 * With the setting `write_files: true` it writes the PNG into its output folder and returns the
 * path instead, the way for files too large to hold in memory or made by other programs.
 * Without that Accept it answers the PNG as a base64 string in JSON.
 *
 * Input: `{"text": "...", "width": 256, "height": 256, "pattern": "waves" | "noise"}`. The text
 * seeds the picture, so the same input always draws the same image. `waves` compresses well;
 * `noise` does not (a 512×512 noise image is a ~1 MB PNG, which the benchmark uses). Drawing is
 * deterministic, so the last few encoded images are kept and a repeated input costs only the write.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encode } from 'fast-png';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { PredictRequest, Predictor, SetupContext } from '../../workers/predictor/api.js';

const MAX_SIDE = 2048;
const REMEMBERED_IMAGES = 4;

export interface Picture {
  text: string;
  width: number;
  height: number;
  pattern: 'waves' | 'noise';
}

function side(value: unknown, name: string): number {
  if (value === undefined) return 256;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SIDE) {
    throw new SwitchyardError('SY_BAD_REQUEST', `${name} must be a whole number of pixels from 1 to ${MAX_SIDE}`);
  }
  return value;
}

function readPicture(raw: unknown): Picture {
  const input = (raw ?? {}) as Record<string, unknown>;
  const pattern = input.pattern ?? 'waves';
  if (pattern !== 'waves' && pattern !== 'noise') throw new SwitchyardError('SY_BAD_REQUEST', 'pattern must be "waves" or "noise"');
  return { text: typeof input.text === 'string' ? input.text : '', width: side(input.width, 'width'), height: side(input.height, 'height'), pattern };
}

/** FNV-1a: a stable 32-bit seed from the text. */
function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** xorshift32: deterministic noise from the seed. */
function noiseFrom(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** RGBA pixels for the picture. */
export function draw(p: Picture): Uint8Array {
  const seed = seedOf(p.text);
  const pixels = new Uint8Array(p.width * p.height * 4);
  if (p.pattern === 'noise') {
    const next = noiseFrom(seed);
    for (let i = 0; i < pixels.length; i += 4) {
      const v = next();
      pixels[i] = v;
      pixels[i + 1] = v >>> 8;
      pixels[i + 2] = v >>> 16;
      pixels[i + 3] = 255;
    }
    return pixels;
  }
  const fx = 0.02 + (seed & 0xff) / 4096;
  const fy = 0.02 + ((seed >>> 8) & 0xff) / 4096;
  const hue = ((seed >>> 16) & 0xff) / 255;
  for (let y = 0; y < p.height; y++) {
    for (let x = 0; x < p.width; x++) {
      const i = (y * p.width + x) * 4;
      const wave = (Math.sin(x * fx * Math.PI) + Math.cos(y * fy * Math.PI)) / 4 + 0.5;
      pixels[i] = Math.round(255 * wave);
      pixels[i + 1] = Math.round(255 * ((wave + hue) % 1));
      pixels[i + 2] = Math.round(255 * (1 - wave));
      pixels[i + 3] = 255;
    }
  }
  return pixels;
}

export function renderPng(p: Picture): Uint8Array {
  return encode({ width: p.width, height: p.height, data: draw(p), depth: 8, channels: 4 });
}

export default class ImagePredictor implements Predictor {
  private outputDir = '.';
  private writeFiles = false;
  /** Recently drawn images by input, oldest first. */
  private readonly recent = new Map<string, Uint8Array>();

  setup(ctx: SetupContext): void {
    this.outputDir = ctx.outputDir;
    this.writeFiles = ctx.settings.write_files === true;
  }

  private png(p: Picture): Uint8Array {
    const key = JSON.stringify(p);
    let png = this.recent.get(key);
    if (png) {
      this.recent.delete(key);
    } else {
      // Kept in shared memory: returned bytes in a SharedArrayBuffer are shared with the gateway's
      // thread, not moved or copied, so the same image can answer every request that asks for it.
      const drawn = renderPng(p);
      png = new Uint8Array(new SharedArrayBuffer(drawn.byteLength));
      png.set(drawn);
      if (this.recent.size >= REMEMBERED_IMAGES) this.recent.delete(this.recent.keys().next().value!);
    }
    this.recent.set(key, png);
    return png;
  }

  async predict(raw: unknown, req: PredictRequest): Promise<string | Uint8Array> {
    const png = this.png(readPicture(raw));
    if (req.accept === 'image/png') {
      // The remembered image itself: shared memory, so neither a copy nor a move (see png()).
      if (!this.writeFiles) return png;
      // The gateway's request id is unique, so concurrent requests never share a file.
      const file = path.join(this.outputDir, `image-${req.id}.png`);
      await writeFile(file, png);
      return file;
    }
    return Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64');
  }
}
