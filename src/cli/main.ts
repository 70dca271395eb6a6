import { Command, CommanderError } from 'commander';
import { BisyncError, ConfigError, ExitCode } from '../errors.js';
import { registerApply } from './commands/apply.js';
import { registerConflicts } from './commands/conflicts.js';
import { registerInit } from './commands/init.js';
import { registerDemo } from './commands/demo.js';
import { registerPlan } from './commands/plan.js';
import { registerRejects } from './commands/rejects.js';
import { registerStatus } from './commands/status.js';
import { registerValidate } from './commands/validate.js';
import { registerVerify } from './commands/verify.js';
import { CliContext, withCommonOptions } from './context.js';
import { terminalSafe } from './terminal-safe.js';

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
  registerConflicts(program, ctx);
  registerDemo(program, ctx);
  registerVerify(program, ctx);

  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    return reportError(error, { json: ctx.json, debug: wantsStack(argv) });
  }
  return ctx.exitCode;
}

/** Whether the user asked for details (`--log-level debug` or `trace`): then errors show their stack. */
export function wantsStack(argv: readonly string[]): boolean {
  return argv.some((a, i) => /^--log-level=(debug|trace)$/.test(a) || (a === '--log-level' && /^(debug|trace)$/.test(argv[i + 1] ?? '')));
}

/**
 * The one place errors become output and exit codes (SPEC §3): one line (and a hint), never a stack
 * trace unless asked for with --log-level debug. bin/bisync.js sends what escapes `main` here too.
 */
export function reportError(error: unknown, options: { json: boolean; debug: boolean }): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage;
  }
  const stack = options.debug && error instanceof Error && error.stack !== undefined ? `${causeChain(error)}\n` : '';
  if (error instanceof BisyncError) {
    if (options.json) {
      const problems = error instanceof ConfigError ? error.problems : undefined;
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message: error.message, hint: error.hint, problems } }, null, 2)}\n`);
    }
    process.stderr.write(terminalSafe(`error: ${error.message}${error.hint === undefined ? '' : `\n  hint: ${error.hint}`}\n`) + stack);
    return error.exitCode;
  }
  const message = firstLine(error instanceof Error ? error.message : String(error)) || (error instanceof Error ? error.name : 'unknown error');
  const hint = options.debug ? undefined : 'this was not expected; run again with --log-level debug for the details, and report it';
  if (options.json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: 'INTERNAL', message, hint } }, null, 2)}\n`);
  process.stderr.write(`error: ${message}${hint === undefined ? '' : `\n  hint: ${hint}`}\n${stack}`);
  return ExitCode.stepFailed;
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? '';
}

/** The stack of `error` and of each `cause` under it (debug output only). */
function causeChain(error: Error): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 5; e = e.cause) parts.push(e.stack ?? `${e.name}: ${e.message}`);
  return parts.join('\ncaused by: ');
}

async function packageVersion(): Promise<string> {
  const { default: pkg } = await import('../../package.json', { with: { type: 'json' } });
  return pkg.version;
}
