/** Starts a real gateway on port 0 for a test, with real worker threads. */
import { fileURLToPath } from 'node:url';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { validateConfig } from '../../gateway/config/load.js';
import { Gateway, type GatewayOptions } from '../../gateway/gateway.js';

/** Compiled fixture (dist/test/fixtures/NAME.js). */
export const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
/** Source fixture (test/fixtures/NAME.ts), for loading through tsx. */
export const sourceFixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}.ts`, import.meta.url));
/** Compiled example (dist/examples/...). */
export const example = (p: string) => fileURLToPath(new URL(`../../examples/${p}`, import.meta.url));
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export function tempDir(prefix = 'sy-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestGateway {
  gateway: Gateway;
  url: string;
  close(): Promise<void>;
}

export async function startGateway(
  raw: { server?: Record<string, unknown>; endpoints: Record<string, Record<string, unknown>> },
  options: { ready?: boolean; gateway?: GatewayOptions } = {},
): Promise<TestGateway> {
  const config = validateConfig({ ...raw, server: { host: '127.0.0.1', port: 0, log_level: 'silent', ...raw.server } });
  const gateway = await Gateway.start(config, { logger: pino({ level: 'silent' }), ...options.gateway });
  if (options.ready !== false && !(await gateway.whenReady(20_000))) {
    await gateway.shutdown(0);
    throw new Error(`gateway not ready: ${JSON.stringify(gateway.readiness())}`);
  }
  return { gateway, url: `http://127.0.0.1:${gateway.port}`, close: () => gateway.shutdown(1000) };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
