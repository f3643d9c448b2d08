import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { registerBenchCommand, type CliOptions } from '../../gateway/cli/bench-command.js';
import { parseBenchArgs } from '../../gateway/cli/bench-options.js';

/** What commander hands the bench action for these arguments, or the error it reports. */
async function viaCommander(args: string[]): Promise<CliOptions | { error: string }> {
  let got: CliOptions | undefined;
  const program = new Command('switchyard').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerBenchCommand(program, async (o) => {
    got = o;
  }).exitOverride();
  try {
    await program.parseAsync(['node', 'switchyard', 'bench', ...args]);
  } catch (err) {
    return { error: (err as Error).message };
  }
  return got!;
}

test('a valid bench command line reads the same without commander as with it', async () => {
  const lines: string[][] = [
    ['--url', 'http://a/x'],
    ['--url=http://a/x', '-c', '5', '-d', '2.5', '--json'],
    ['--url', 'http://a/x', '-H', 'a: 1', '-H', 'b: 2', '--rate', '100', '--arrival', 'poisson', '--max-connections', '8', '--ws', '--inflight', '4'],
    ['--url', 'http://a/x', '-d', '1', '-d', '3'],
    ['-r', '250', '--url', 'http://a/x', '--stages', '10s:500,20s:2000', '--slo', 'p99=50ms', '--search', '--seed', '7', '--workers', '0', '-w', '1', '--timeout', '5'],
    ['--url', 'http://a/x', '--rounds', '2', '--compare', 'http://b/y', '-b', 'body.json', '-m', 'PUT', '--stream', '--sse', '--report', 'out.html', '--sweep', '100..400x4'],
  ];
  for (const args of lines) {
    const fast = parseBenchArgs(args);
    assert.ok(fast, `read without commander: ${args.join(' ')}`);
    assert.deepEqual({ ...fast }, { ...(await viaCommander(args)) }, args.join(' '));
  }
});

test('help, errors and anything unusual go to commander', async () => {
  const lines: string[][] = [[], ['--help'], ['-h'], ['--url', 'http://a/x', '-c', '0'], ['--url', 'http://a/x', '--workers', '-1'], ['--url', 'http://a/x', '--nope'], ['--url', 'http://a/x', 'extra'], ['-c', '3'], ['--url']];
  for (const args of lines) {
    assert.equal(parseBenchArgs(args), undefined, args.join(' '));
    const commander = await viaCommander(args);
    assert.ok('error' in commander, `commander rejects: ${args.join(' ')}`);
  }
});
