import assert from 'node:assert/strict';
import { after, before, describe, it, test } from 'node:test';
import OpenAI from 'openai';
import { example, fixture, startGateway, type TestGateway } from '../helpers/gateway.js';

const KEY = 'sk-switchyard-test-1';

describe('OpenAI-compatible routes, driven by the openai package', () => {
  let gw: TestGateway;
  let client: OpenAI;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        parrot: { predictor: example('parrot/predictor.js'), openai: { model: 'parrot' } },
        locked: { predictor: example('parrot/predictor.js'), openai: { model: 'parrot-pro' }, api_keys: [KEY] },
        b: { predictor: fixture('behaviours'), openai: { model: 'broken' } },
        echo: { predictor: example('echo/predictor.js') },
      },
    });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'not-checked-here', maxRetries: 0 });
  });
  after(() => gw.close());

  test('chat.completions.create without stream: one object, the text joined, usage as the predictor reported it', async () => {
    const res = await client.chat.completions.create({ model: 'parrot', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there world' }] });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, 'parrot');
    assert.match(res.id, /^chatcmpl-/);
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0]!.message.role, 'assistant');
    assert.equal(res.choices[0]!.message.content, 'You said: hello there world');
    assert.equal(res.choices[0]!.finish_reason, 'stop');
    assert.deepEqual(res.usage, { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });
  });

  test('chat.completions.create with stream: chat.completion.chunk deltas, a finish, usage when asked', async () => {
    const stream = await client.chat.completions.create({ model: 'parrot', messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } });
    const deltas: string[] = [];
    const finishes: string[] = [];
    let usage;
    let first = true;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        if (first) {
          assert.equal(choice.delta.role, 'assistant');
          first = false;
        }
        if (choice.delta.content) deltas.push(choice.delta.content);
        if (choice.finish_reason) finishes.push(choice.finish_reason);
      }
    }
    assert.deepEqual(deltas, ['You', ' said:', ' one', ' two', ' three']);
    assert.deepEqual(finishes, ['stop']);
    assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  });

  test('max_tokens cuts the answer with finish_reason "length"', async () => {
    const res = await client.chat.completions.create({ model: 'parrot', messages: [{ role: 'user', content: 'a b c d' }], max_tokens: 3 });
    assert.equal(res.choices[0]!.message.content, 'You said: a');
    assert.equal(res.choices[0]!.finish_reason, 'length');
  });

  test('completions.create, stream and not: text_completion', async () => {
    const whole = await client.completions.create({ model: 'parrot', prompt: 'polly wants' });
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.choices[0]!.text, 'polly wants ... said the parrot.');
    const stream = await client.completions.create({ model: 'parrot', prompt: 'polly', stream: true });
    let joined = '';
    for await (const chunk of stream) joined += chunk.choices[0]?.text ?? '';
    assert.equal(joined, 'polly ... said the parrot.');
  });

  test('models.list shows only the models this key opens; models.retrieve names one', async () => {
    const open = await client.models.list();
    assert.deepEqual(open.data.map((m) => m.id).sort(), ['broken', 'parrot']);
    const keyed = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
    assert.deepEqual((await keyed.models.list()).data.map((m) => m.id).sort(), ['broken', 'parrot', 'parrot-pro']);
    const one = await keyed.models.retrieve('parrot-pro');
    assert.equal(one.id, 'parrot-pro');
    assert.equal(one.object, 'model');
  });

  test('the endpoint\'s Bearer keys: a wrong key is a 401 AuthenticationError, the right one works', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'parrot-pro', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError);
      assert.equal(err.status, 401);
      assert.equal(err.code, 'SY_UNAUTHORIZED');
      return true;
    });
    const keyed = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const res = await keyed.chat.completions.create({ model: 'parrot-pro', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.choices[0]!.message.content, 'You said: hi');
  });

  test('errors in OpenAI\'s shape: unknown model 404, bad request 400, a failing stream throws with the code', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-nope', messages: [] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.code, 'SY_NOT_FOUND');
      return true;
    });
    await assert.rejects(client.completions.create({ model: 'parrot' } as never), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.match(err.message, /"prompt" is required/);
      return true;
    });
    // The behaviours fixture reads its own fields from the request: fail at the third chunk.
    const stream = await client.chat.completions.create({ model: 'broken', messages: [], stream: true, ...({ chunks: 5, fail_at: 2 } as object) });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
      })(),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError);
        assert.match(err.message, /stream failed at chunk 2/);
        return true;
      },
    );
    assert.deepEqual(seen, ['chunk 0\n', 'chunk 1\n']);
  });

  test('an endpoint without openai: is not reachable by its name as a model', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'echo', messages: [] }), OpenAI.NotFoundError);
  });
});

describe('OpenAI-compatible routes on an endpoint whose streams can be resumed', () => {
  let gw: TestGateway;
  let client: OpenAI;
  before(async () => {
    // Reconnectable streams pass through a relay: what predictStream returned must come through it too.
    gw = await startGateway({ endpoints: { resumable: { predictor: example('parrot/predictor.js'), openai: { model: 'parrot-resumable' }, stream_reconnect: { grace_ms: 5_000 } } } });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'not-checked-here', maxRetries: 0 });
  });
  after(() => gw.close());

  it('usage and finish_reason reach the client of an endpoint whose streams can be resumed', async () => {
    const stream = await client.chat.completions.create({ model: 'parrot-resumable', messages: [{ role: 'user', content: 'a b c d' }], max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    const finishes: string[] = [];
    let usage;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) if (choice.finish_reason) finishes.push(choice.finish_reason);
    }
    assert.deepEqual(finishes, ['length']);
    assert.deepEqual(usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
    const joined = await client.chat.completions.create({ model: 'parrot-resumable', messages: [{ role: 'user', content: 'hello there world' }] });
    assert.deepEqual(joined.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  });
});
