/**
 * HTTP/1.1 at the door, on raw sockets: HEAD then GET on one connection, Content-Length headers
 * that disagree, JSON nested 200,000 deep, an empty body, and two POSTs pipelined directly (a
 * limit of uWebSockets.js, documented in the README: it closes the connection and both answers
 * are lost; put a proxy in front).
 */
import { exchange, parseResponses } from '../../test/helpers/raw-http.js';
import type { ChaosCase } from './case.js';

const request = (method: string, path: string, headers: string[] = [], body = '') =>
  `${method} ${path} HTTP/1.1\r\nHost: chaos\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
const post = (path: string, body: string, headers: string[] = []) =>
  request('POST', path, ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, ...headers], body);

export const httpDoor: ChaosCase = {
  name: 'HTTP/1.1 at the door (raw sockets)',
  expected:
    'HEAD+GET: 2 answers, first bodiless; Content-Length 2 and 13: 400, closed; a GET pipelined behind them: not answered, closed; JSON 200,000 deep: 400; empty body: 400; 2 pipelined POSTs: 0 answers, closed (uWS library limit, README "HTTP/1.1 at the door")',
  durationMs: 0,
  async run({ port, endpoint }) {
    const target = `/inference/${endpoint}`;
    const parts: string[] = [];

    const headGet = await exchange(port, request('HEAD', '/healthz') + request('GET', '/healthz'), { done: (b) => parseResponses(b, [true]).length === 2 });
    const hg = parseResponses(headGet.bytes, [true]);
    // The HEAD answer is bodiless when the GET's status line follows its headers directly.
    const headEnd = headGet.bytes.indexOf('\r\n\r\n') + 4;
    const bodiless = headGet.bytes.subarray(headEnd, headEnd + 8).toString('latin1') === 'HTTP/1.1';
    parts.push(`HEAD+GET: ${hg.length} answers (${hg.map((r) => r.status).join(', ')})${bodiless ? ', first bodiless' : ', first NOT bodiless'}`);

    const ambiguous = request('POST', target, ['Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 13'], '{}');
    const lone = await exchange(port, ambiguous);
    parts.push(`Content-Length 2 and 13: ${parseResponses(lone.bytes)[0]?.status ?? 'no answer'}, ${lone.closed ? 'closed' : 'left open'}`);
    const smuggled = await exchange(port, ambiguous + request('GET', '/healthz'));
    const served = parseResponses(smuggled.bytes).filter((r) => r.status !== 400);
    parts.push(`a GET pipelined behind them: ${served[0] ? `answered ${served[0].status}` : 'not answered'}, ${smuggled.closed ? 'closed' : 'left open'}`);

    const deep = await exchange(port, post(target, '['.repeat(200_000) + ']'.repeat(200_000)), { done: (b) => parseResponses(b).length === 1 });
    parts.push(`JSON 200,000 deep: ${parseResponses(deep.bytes)[0]?.status ?? 'no answer'}`);

    const empty = await exchange(port, request('POST', target, ['Content-Type: application/json', 'Content-Length: 0']), { done: (b) => parseResponses(b).length === 1 });
    parts.push(`empty body: ${parseResponses(empty.bytes)[0]?.status ?? 'no answer'}`);

    const pipelined = await exchange(port, post(target, '{"value":1}') + post(target, '{"value":2}'), { done: (b) => parseResponses(b).length === 2, waitMs: 5000 });
    const pl = parseResponses(pipelined.bytes);
    parts.push(`2 pipelined POSTs: ${pl.length} answers${pl.length ? ` (${pl.map((r) => r.status).join(', ')})` : ''}${pipelined.closed ? ', closed' : ', left open'} (library limit)`);

    return parts.join('; ');
  },
};
