/**
 * The only import of uWebSockets.js. The npm build we use silently falls back to a slow pure-JS
 * server when its native binary does not load; we load the binary ourselves so a fallback is
 * never silent: `loadUws({ allowJsFallback })` throws unless the caller opted in.
 */
import { createRequire } from 'node:module';
import type * as UwsTypes from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_listen_socket, RecognizedString } from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export interface LoadedUws {
  uws: typeof UwsTypes;
  native: boolean;
  /** Why the native binary did not load, when it did not. */
  fallbackReason?: string | undefined;
}

let cached: LoadedUws | undefined;

export class UwsFallbackError extends Error {
  readonly code = 'SY_UWS_NATIVE_MISSING';
}

export const NATIVE_BINARY = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;

function load(binary: string): LoadedUws {
  try {
    return { uws: require(binary) as typeof UwsTypes, native: true };
  } catch (err) {
    return {
      uws: require('uWebSockets.js/dist/index') as typeof UwsTypes,
      native: false,
      fallbackReason: (err as Error).message.split('\n')[0],
    };
  }
}

/** `binary` is for tests: a path that does not load stands for a platform without the native build. */
export function loadUws(options: { allowJsFallback?: boolean; binary?: string } = {}): LoadedUws {
  const loaded = options.binary ? load(options.binary) : (cached ??= load(NATIVE_BINARY));
  if (!loaded.native && !options.allowJsFallback) {
    throw new UwsFallbackError(
      `the uWebSockets.js native binary did not load (${loaded.fallbackReason}); ` +
        'its pure-JS fallback is many times slower. Use Node.js 20 on linux/macOS x64/arm64, ' +
        'or start with --allow-js-fallback (server.allow_js_fallback: true) to serve anyway.',
    );
  }
  return loaded;
}
