/**
 * `switchyard bench` on its own: bin/switchyard.js comes here for `bench`, so a load generator does
 * not load the serving stack (config, yaml, zod, onnxruntime, the gateway) it never uses; that
 * start-up would otherwise cost it most of a CPU-second per run.
 */
import { Command } from 'commander';
import { registerBenchCommand } from './bench-command.js';

const program = new Command('switchyard').showHelpAfterError();
registerBenchCommand(program);
program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`switchyard: ${err.message}`);
  process.exit(1);
});
