import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { applyFinalLine } from '../../commands/needs-you.js';
import { BisyncError, ExitCode } from '../../errors.js';
import type { DirectionOption, ModeOption } from '../../compiler/compile-plan.js';
import { applyText } from '../apply-output.js';
import { directionOption, modeOption, withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { progressReporter } from '../progress.js';

export function registerApply(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('apply'))
    .description('run the steps: stream, merge, record; a summary per step')
    .addOption(directionOption())
    .option('--table <names...>', 'only these tables (config names)')
    .addOption(modeOption())
    .option('--dry-run', 'run every step in a transaction that rolls back, and report what would change')
    .option('--allow-deletes', 'let deletes: mirror remove more than max_delete_fraction')
    .option('-q, --quiet', 'no summary on stdout (unless --json) and only warn/error logs: silence means nothing needs you')
    .option('--fail-on-rejects', 'exit 1 when any step left rows in rejects (for schedules that should page someone)')
    .option('--plan <file>', 'run the plan bisync plan --out FILE saved (its direction, tables and mode), or refuse (exit 4, nothing run) if the catalog or state changed since')
    .addOption(
      new Option('--probe <when>', 'ask every step first, in one round trip per database, whether it has anything to do, and skip those that have not: auto = only over a slow link (a round trip of 10 ms or more)')
        .choices(['auto', 'always', 'never'])
        .default('auto'),
    )
    .option('--concurrency <n>', 'steps run at once; `after` dependencies and forward-before-reverse always hold', parseConcurrency, 2)
    .action(
      async (
        flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; dryRun?: boolean; allowDeletes?: boolean; failOnRejects?: boolean; quiet?: boolean; concurrency: number; plan?: string; probe: 'auto' | 'always' | 'never' },
        command: Command,
      ) => {
        const logger = ctx.logger(command);
        const config = await ctx.config(command);
        // Connecting costs round trips (TCP, TLS, authentication): started first, it goes on while
        // the rest of apply loads, and the run takes these connections (connect.ts).
        const { preconnect } = await import('../../executor/connect.js');
        for (const db of Object.values(config.databases)) preconnect(db);
        const [{ applyCommand }, { readSavedPlan }] = await Promise.all([import('../../commands/apply.js'), import('../../commands/plan.js')]);
        const saved = flags.plan === undefined ? undefined : readSavedPlan(flags.plan);
        const given = ['direction', 'table', 'mode'].filter((o) => command.getOptionValueSource(o) === 'cli');
        if (saved !== undefined && given.length > 0) {
          throw new BisyncError('USAGE', `--plan runs the saved plan with its own direction, tables and mode; --${given.join(', --')} cannot change them`, {
            exitCode: ExitCode.usage,
            hint: `drop --${given.join(', --')}, or write a new plan with them (bisync plan --out FILE …)`,
          });
        }
        const progress = progressReporter(process.stderr);
        // Ctrl-C (or a service stop): cut the connections, so what was not committed rolls back, start
        // no further step, and report what was committed. A second Ctrl-C quits at once.
        const controller = new AbortController();
        let interruptedBy: NodeJS.Signals | undefined;
        const onSignal = (signal: NodeJS.Signals): void => {
          if (interruptedBy !== undefined) process.exit(signalExit(signal));
          interruptedBy = signal;
          logger.warn({ signal }, `${signal}: rolling back the steps in progress and starting no more (again to quit at once)`);
          controller.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        const report = await applyCommand(config, {
          signal: controller.signal,
          direction: saved?.options.direction ?? flags.direction,
          tables: saved?.options.tables ?? flags.table ?? [],
          mode: saved?.options.mode ?? flags.mode,
          ...(saved === undefined ? {} : { savedPlan: saved }),
          dryRun: flags.dryRun === true,
          allowDeletes: flags.allowDeletes === true,
          failOnRejects: flags.failOnRejects === true,
          concurrency: flags.concurrency,
          probe: flags.probe === 'auto' ? 'auto' : flags.probe === 'always',
          logger,
          ...(progress === undefined ? {} : { onProgress: progress }),
        }).catch((error: unknown) => {
          if (interruptedBy === undefined) throw error;
          throw new BisyncError('INTERRUPTED', `interrupted by ${interruptedBy} before any step ran; nothing was written`, { exitCode: ExitCode.interrupted, cause: error });
        }).finally(() => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        });
        if (progress !== undefined) process.stderr.write('\r\x1b[2K');
        if (ctx.json) ctx.printJson(report);
        else if (flags.quiet !== true) ctx.print(applyText(report));
        const exitCode = interruptedBy === undefined ? report.exitCode : signalExit(interruptedBy);
        const final = applyFinalLine(report.steps, report.attention, exitCode, report.dryRun, interruptedBy);
        logger[final.level]({ runId: report.runId, exitCode, attention: report.attention }, final.message);
        ctx.exit(exitCode);
      },
    );
}

/** The shell's exit code for a process ended by `signal` (128 + its number): 130 for SIGINT, 143 for SIGTERM. */
function signalExit(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? 143 : ExitCode.interrupted;
}

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new InvalidArgumentError('a whole number from 1 to 32');
  return n;
}
