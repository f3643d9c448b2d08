import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { demoConfig } from '../../gateway/config/demo.js';
import { Gateway } from '../../gateway/gateway.js';
import { repoRoot } from '../helpers/gateway.js';
import { readmeBlocks } from '../helpers/readme.js';

const run = promisify(execFile);

/** The README's examples against the demo, as written; only the port differs. */
describe('README "Clients": every example runs against the demo', () => {
  let gateway: Gateway;
  let at = (code: string) => code;
  before(async () => {
    gateway = await Gateway.start(demoConfig({ port: 0, host: '127.0.0.1' }), { logger: pino({ level: 'silent' }) });
    assert.ok(await gateway.whenReady(30_000), 'the demo did not get ready');
    at = (code) => code.replaceAll('localhost:8080', `127.0.0.1:${gateway.port}`);
  });
  after(() => gateway.shutdown(1000));

  test('curl', async () => {
    const [block] = readmeBlocks('## Clients', 'sh');
    const { stdout } = await run('bash', ['-euc', at(block!)], { timeout: 60_000 });
    assert.match(stdout, /\{"text":"hello"\}/);
    assert.match(stdout, /id: [\w-]+:1\ndata: Answer for why is: 1/);
    assert.match(stdout, /"model_name":"mlp","model_version":"1","outputs":\[\{"name":"y","datatype":"FP32","shape":\[1,3\]/);
    assert.match(stdout, /"content":"You said: hello"/);
    assert.doesNotMatch(stdout, /"error"/);
  });

  test('Python requests: unary, a chunked stream, SSE over GET; then a v2 client, JSON and binary', async () => {
    const [clients, v2] = readmeBlocks('## Clients', 'python');
    const first = await run('python3', ['-c', at(clients!)], { timeout: 60_000 });
    assert.match(first.stdout, /^\{'text': 'hello'\}\n/);
    assert.match(first.stdout, /Answer for why is: 1\n\nAnswer for why is: 2\n\n[\s\S]*Answer for why is: 5\n\n/);
    assert.match(first.stdout, /\nAnswer for why is: 5\n/);
    const second = await run('python3', ['-c', at(v2!)], { timeout: 60_000 });
    assert.match(second.stdout, /'platform': 'onnxruntime_onnx'/);
    assert.match(second.stdout, /'name': 'probs', 'datatype': 'FP32', 'shape': \[1, 3\], 'parameters': \{'binary_data_size': 12\}/);
    assert.doesNotMatch(second.stdout + second.stderr, /Traceback|'error'/);
  });

  test('the OpenAI SDK, not streamed and streamed', async () => {
    const [block] = readmeBlocks('## Clients', 'js');
    // Inside the repository, so `import 'openai'` resolves from its node_modules.
    const file = path.join(repoRoot, 'dist', 'readme-openai-example.mjs');
    writeFileSync(file, at(block!));
    const { stdout } = await run(process.execPath, [file], { timeout: 60_000 });
    assert.match(stdout, /^You said: hello \{ prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 \}\nYou said: hello$/);
  });
});
