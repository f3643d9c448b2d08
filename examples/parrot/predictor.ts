/**
 * A toy text "model" for the OpenAI-compatible routes, with no download: it answers
 * "You said: <the last user message>" (or "<prompt> ..." echoed for /v1/completions), one word
 * per chunk, and reports usage the way any text predictor can: by returning
 * `{ usage: { prompt_tokens, completion_tokens }, finish_reason }` from predictStream. A "token"
 * here is a word. `max_tokens` (or `max_completion_tokens`) cuts the answer with
 * finish_reason "length".
 *
 * Settings: `interval_ms` between words (default 0).
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';
import type { PredictRequest, Predictor, SetupContext } from '../../workers/predictor/api.js';

interface OpenAiRequest {
  messages?: Array<{ role?: unknown; content?: unknown }>;
  prompt?: unknown;
  max_tokens?: unknown;
  max_completion_tokens?: unknown;
}

const words = (text: string): string[] => text.split(/\s+/).filter(Boolean);

/** A message's text: a string, or the text parts of a content array. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part) => (typeof part?.text === 'string' ? part.text : '')).join(' ');
  return '';
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms === 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

export default class Parrot implements Predictor {
  private intervalMs = 0;

  setup(ctx: SetupContext): void {
    const ms = ctx.settings.interval_ms;
    if (ms !== undefined && (typeof ms !== 'number' || ms < 0)) throw new Error('settings.interval_ms must be a number ≥ 0');
    this.intervalMs = (ms as number | undefined) ?? 0;
  }

  /** The whole answer at once, for /inference/{endpoint} without "stream". */
  predict(input: unknown): { text: string } {
    return { text: this.reply(input as OpenAiRequest).answer.join(' ') };
  }

  async *predictStream(input: unknown, req: PredictRequest): AsyncGenerator<string, { usage: { prompt_tokens: number; completion_tokens: number }; finish_reason: string }> {
    const { prompt, answer, limit } = this.reply(input as OpenAiRequest);
    let sent = 0;
    for (const word of answer) {
      if (sent === limit || req.signal.aborted) break;
      yield sent === 0 ? word : ` ${word}`;
      sent++;
      await pause(this.intervalMs, req.signal);
    }
    return { usage: { prompt_tokens: prompt, completion_tokens: sent }, finish_reason: sent < answer.length ? 'length' : 'stop' };
  }

  private reply(request: OpenAiRequest): { prompt: number; answer: string[]; limit: number } {
    const limitRaw = request.max_completion_tokens ?? request.max_tokens;
    if (limitRaw !== undefined && limitRaw !== null && (!Number.isInteger(limitRaw) || (limitRaw as number) < 1)) {
      throw new SwitchyardError('SY_BAD_REQUEST', 'max_tokens must be a positive integer');
    }
    const limit = (limitRaw as number | undefined | null) ?? Infinity;
    if (Array.isArray(request.messages)) {
      const all = request.messages.map((m) => textOf(m?.content));
      const lastUser = [...request.messages].reverse().find((m) => m?.role === 'user');
      return { prompt: words(all.join(' ')).length, answer: ['You', 'said:', ...words(textOf(lastUser?.content))], limit };
    }
    const prompt = Array.isArray(request.prompt) ? request.prompt.join(' ') : typeof request.prompt === 'string' ? request.prompt : '';
    return { prompt: words(prompt).length, answer: [...words(prompt), '...', 'said', 'the', 'parrot.'], limit };
  }
}
