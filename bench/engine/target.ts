/**
 * Builds a target from what the user gave (URL, method, headers, body, stream kind): the request
 * bytes are serialised here, once, and written unchanged for every request.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { HttpTarget, StreamKind, WsTarget } from './plan.js';

export interface TargetSpec {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  stream?: StreamKind;
  ws?: boolean;
  /** WebSocket: requests in flight per socket at most. */
  inFlightPerSocket?: number;
  /** WebSocket: the request's input and whether it asks for a stream. */
  wsInput?: unknown;
}

function endpoint(url: URL): { host: string; port: number; tls: boolean } {
  const tls = url.protocol === 'https:' || url.protocol === 'wss:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port ? Number(url.port) : tls ? 443 : 80, tls };
}

export function httpTarget(spec: TargetSpec): HttpTarget {
  const url = new URL(spec.url);
  const body = spec.body === undefined ? undefined : Buffer.isBuffer(spec.body) ? spec.body : Buffer.from(spec.body);
  const method = (spec.method ?? (body === undefined ? 'GET' : 'POST')).toUpperCase();
  const stream = spec.stream ?? 'none';
  const headers: Record<string, string> = {};
  const given = new Set(Object.keys(spec.headers ?? {}).map((h) => h.toLowerCase()));
  headers.host = url.host;
  if (body !== undefined && !given.has('content-type')) headers['content-type'] = 'application/json';
  if (stream === 'sse' && !given.has('accept')) headers.accept = 'text/event-stream';
  Object.assign(headers, spec.headers);
  if (body !== undefined || method === 'POST' || method === 'PUT' || method === 'PATCH') headers['content-length'] = String(body?.length ?? 0);
  const head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  const request = body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
  return { transport: 'http', url: url.href, ...endpoint(url), request: new Uint8Array(request), bodiless: method === 'HEAD', stream };
}

export function wsTarget(spec: TargetSpec): WsTarget {
  const url = new URL(spec.url);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  const key = randomBytes(16).toString('base64');
  const expectedAccept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  const headers: Record<string, string> = {
    host: url.host,
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': key,
    'sec-websocket-version': '13',
    ...spec.headers,
  };
  const handshake = `GET ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  const stream = spec.stream !== undefined && spec.stream !== 'none';
  return {
    transport: 'ws',
    url: url.href,
    ...endpoint(url),
    handshake: new Uint8Array(Buffer.from(handshake, 'latin1')),
    expectedAccept,
    messageTail: `,"input":${JSON.stringify(spec.wsInput ?? {})}${stream ? ',"stream":true' : ''}}`,
    stream,
    inFlightPerSocket: spec.inFlightPerSocket ?? 1,
  };
}
