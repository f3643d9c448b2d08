/**
 * `switchyard bench` on its own: bin/switchyard.js comes here for `bench`, so a load generator does
 * not load the serving stack (config, yaml, zod, onnxruntime, the gateway) it never uses; that
 * start-up would otherwise cost it most of a CPU-second per run. A plain, valid command line is
 * read without commander too (bench-options.ts); help and errors are commander's.
 */
import { parseBenchArgs } from './bench-options.js';
import { runBenchCommand } from './bench-command.js';

// A reader that goes away early (`switchyard bench ... | head`) ends the command quietly, as it
// would a C tool killed by SIGPIPE (status 141), rather than with an unhandled EPIPE and its stack.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(141);
});

const args = process.argv.slice(3);
const fast = parseBenchArgs(args);
if (fast) {
  const { header, ...rest } = fast;
  process.exitCode = await runBenchCommand({ ...rest, headers: header });
} else {
  const { Command } = await import('commander');
  const { registerBenchCommand } = await import('./bench-command.js');
  const program = new Command('switchyard').showHelpAfterError();
  registerBenchCommand(program);
  await program.parseAsync(process.argv).catch((err: Error) => {
    console.error(`switchyard: ${err.message}`);
    process.exit(1);
  });
}
