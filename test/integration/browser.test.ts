import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { example, startGateway, type TestGateway } from '../helpers/gateway.js';
import { readmeBlocks } from '../helpers/readme.js';

/** Debian's chromium (`.ci/run` installs it), or CHROMIUM_PATH. */
const BROWSER = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => p && existsSync(p));
const KEY = 'change-me-please';

describe('a browser page on another origin: unary fetch, fetch-stream, EventSource, WebSocket with a key', { skip: BROWSER ? false : 'no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)' }, () => {
  let gw: TestGateway;
  let site: Server;
  let siteOrigin: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    // The page's own origin: a static server on another port.
    let pageHtml = '';
    site = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(req.url === '/' ? pageHtml : '<!doctype html><title>blank</title>');
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    gw = await startGateway({
      server: { cors: { allow_origins: [siteOrigin] } },
      endpoints: {
        echo: { predictor: example('echo/predictor.js') },
        stream: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 } },
        locked: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 }, api_keys: [KEY] },
      },
    });
    const [readmePage] = readmeBlocks('## Clients', 'html');
    pageHtml = `<!doctype html><html><body>${readmePage!.replaceAll('http://localhost:8080', gw.url)}</body></html>`;
    browser = await puppeteer.launch({ executablePath: BROWSER!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
  });

  after(async () => {
    await browser?.close();
    await gw?.close();
    await new Promise((resolve) => site?.close(resolve));
  });

  test('the README page gets every answer', async () => {
    await page.goto(`${siteOrigin}/`);
    // A string, evaluated in the page (this file is compiled without the DOM's types).
    await page.waitForFunction("document.getElementById('out').textContent.includes('done\\n')", { timeout: 30_000 }).catch(() => undefined);
    const lines: string[] = ((await page.$eval('#out', (el) => el.textContent ?? '')) as string).split('\n').filter(Boolean);
    assert.deepEqual(pageErrors, []);
    const answer = [1, 2, 3, 4, 5].map((i) => `Answer for why is: ${i}\n\n`);
    const of = (kind: string) => lines.filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1));
    assert.deepEqual(of('unary'), ['{"text":"hi"}']);
    assert.equal(of('fetch-stream').map((l) => JSON.parse(l) as string).join(''), answer.join(''));
    const events = of('event-source');
    assert.equal(events.length, 5);
    events.forEach((e, i) => {
      const [id, data] = [e.slice(0, e.indexOf(' ')), e.slice(e.indexOf(' ') + 1)];
      assert.match(id, new RegExp(`^[\\w-]+:${i + 1}$`));
      assert.equal(JSON.parse(data), answer[i]);
    });
    assert.deepEqual(of('websocket').map((l) => JSON.parse(l) as string), answer);
    assert.equal(lines[lines.length - 1], 'done');
  });

  test('an endpoint with keys: fetch with Authorization (a preflighted request) and a WebSocket with the key as subprotocol', async () => {
    await page.goto(`${siteOrigin}/blank`);
    const got = await page.evaluate(
      async (base: string, key: string) => {
        const res = await fetch(`${base}/inference/locked`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-timeout-ms': '20000' },
          body: JSON.stringify({ text: 'k', chunks: 2, stream: true }),
        });
        const streamHeader = res.headers.get('x-switchyard-stream');
        const text = await res.text();
        const refused = await fetch(`${base}/inference/locked`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        const refusedBody = (await refused.json()) as { error: { code: string } };
        const ws = await new Promise<{ protocol: string; chunks: string[] }>((resolve, reject) => {
          const socket = new WebSocket(`${base.replace('http', 'ws')}/inference/locked`, ['switchyard.v1', `switchyard.bearer.${key}`]);
          const chunks: string[] = [];
          socket.onopen = () => socket.send(JSON.stringify({ id: 1, input: { text: 'w', chunks: 2 }, stream: true }));
          socket.onmessage = ({ data }) => {
            const m = JSON.parse(data as string);
            if (m.chunk !== undefined) chunks.push(m.chunk);
            if (m.done || m.error) {
              socket.close();
              resolve({ protocol: socket.protocol, chunks });
            }
          };
          socket.onerror = () => reject(new Error('the keyed WebSocket failed'));
        });
        const wrongKey = await new Promise<string>((resolve) => {
          const socket = new WebSocket(`${base.replace('http', 'ws')}/inference/locked`, ['switchyard.v1', 'switchyard.bearer.not-the-key']);
          socket.onopen = () => resolve('opened');
          socket.onclose = (e) => resolve(`closed ${e.code}`);
        });
        return { status: res.status, streamHeader, text, refused: [refused.status, refusedBody.error.code], ws, wrongKey };
      },
      gw.url,
      KEY,
    );
    assert.equal(got.status, 200);
    assert.match(got.streamHeader ?? '', /^[\w-]{20}$/, 'X-Switchyard-Stream is exposed to the page');
    assert.equal(got.text, 'Answer for k is: 1\n\nAnswer for k is: 2\n\n');
    assert.deepEqual(got.refused, [401, 'SY_UNAUTHORIZED'], 'an error answer is readable by the page: it carries the CORS headers');
    assert.equal(got.ws.protocol, 'switchyard.v1');
    assert.deepEqual(got.ws.chunks, ['Answer for w is: 1\n\n', 'Answer for w is: 2\n\n']);
    assert.equal(got.wrongKey, 'closed 1006');
  });
});
