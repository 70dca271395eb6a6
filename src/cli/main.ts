import { Command, CommanderError } from 'commander';
import { BisyncError, ConfigError, ExitCode } from '../errors.js';
import { registerApply } from './commands/apply.js';
import { registerInit } from './commands/init.js';
import { registerDemo } from './commands/demo.js';
import { registerPlan } from './commands/plan.js';
import { registerRejects } from './commands/rejects.js';
import { registerStatus } from './commands/status.js';
import { registerValidate } from './commands/validate.js';
import { registerVerify } from './commands/verify.js';
import { CliContext, withCommonOptions } from './context.js';

/** Run the CLI with `argv` (as in process.argv); resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const ctx = new CliContext(argv);
  const program = withCommonOptions(new Command('bisync'))
    .description('Keep chosen tables of two PostgreSQL databases in step, in both directions.')
    .version(await packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run bisync --help for usage)')
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    });

  registerValidate(program, ctx);
  registerPlan(program, ctx);
  registerApply(program, ctx);
  registerInit(program, ctx);
  registerStatus(program, ctx);
  registerRejects(program, ctx);
  registerDemo(program, ctx);
  registerVerify(program, ctx);

  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    return reportError(error, ctx.json);
  }
  return ctx.exitCode;
}

/** The one place errors become output and exit codes (SPEC §3). */
function reportError(error: unknown, json: boolean): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage;
  }
  if (error instanceof BisyncError) {
    if (json) {
      const problems = error instanceof ConfigError ? error.problems : undefined;
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message: error.message, hint: error.hint, problems } }, null, 2)}\n`);
    }
    process.stderr.write(`error: ${error.message}${error.hint === undefined ? '' : `\n  hint: ${error.hint}`}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: 'INTERNAL', message } }, null, 2)}\n`);
  process.stderr.write(`error: ${message}\n${error instanceof Error && error.stack !== undefined ? `${error.stack}\n` : ''}`);
  return ExitCode.stepFailed;
}

async function packageVersion(): Promise<string> {
  const { default: pkg } = await import('../../package.json', { with: { type: 'json' } });
  return pkg.version;
}
