/**
 * Server-Sent Events as the load generator reads them: an event ends at a blank line; a data event
 * is one chunk; `event: error` marks the stream as error-framed; `event: end` or `data: [DONE]`
 * (the OpenAI convention) says the stream is over and is not a chunk. Events split across reads
 * are joined first, so a chunk is timed when its event is complete.
 */
import type { RequestRecord } from './channel.js';

export class SseReader {
  private carry = '';

  reset(): void {
    this.carry = '';
  }

  feed(data: Buffer, request: RequestRecord, onEvent: () => void): void {
    let text = this.carry + data.toString('utf8');
    for (;;) {
      const lf = text.indexOf('\n\n');
      const crlf = text.indexOf('\r\n\r\n');
      let end: number;
      let skip: number;
      if (lf === -1 && crlf === -1) break;
      if (crlf !== -1 && (lf === -1 || crlf < lf)) {
        end = crlf;
        skip = 4;
      } else {
        end = lf;
        skip = 2;
      }
      const event = text.slice(0, end);
      text = text.slice(end + skip);
      this.dispatch(event, request, onEvent);
    }
    this.carry = text;
  }

  private dispatch(event: string, request: RequestRecord, onEvent: () => void): void {
    let type = 'message';
    let hasData = false;
    let data = '';
    for (const raw of event.split('\n')) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('data:')) {
        data += (hasData ? '\n' : '') + line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
        hasData = true;
      }
    }
    if (type === 'error') request.errorFrame = true;
    else if (type === 'end' || data === '[DONE]') request.ended = true;
    else if (hasData) onEvent();
  }
}
