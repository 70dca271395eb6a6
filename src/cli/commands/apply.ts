import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { applyCommand } from '../../commands/apply.js';
import { applyFinalLine } from '../../commands/needs-you.js';
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
    .option('--concurrency <n>', 'steps run at once; `after` dependencies and forward-before-reverse always hold', parseConcurrency, 2)
    .action(
      async (
        flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; dryRun?: boolean; allowDeletes?: boolean; failOnRejects?: boolean; quiet?: boolean; concurrency: number },
        command: Command,
      ) => {
        const logger = ctx.logger(command);
        const config = await ctx.config(command);
        const progress = progressReporter(process.stderr);
        const report = await applyCommand(config, {
          direction: flags.direction,
          tables: flags.table ?? [],
          mode: flags.mode,
          dryRun: flags.dryRun === true,
          allowDeletes: flags.allowDeletes === true,
          failOnRejects: flags.failOnRejects === true,
          concurrency: flags.concurrency,
          logger,
          ...(progress === undefined ? {} : { onProgress: progress }),
        });
        if (progress !== undefined) process.stderr.write('\r\x1b[2K');
        if (ctx.json) ctx.printJson(report);
        else if (flags.quiet !== true) ctx.print(applyText(report));
        const final = applyFinalLine(report.steps, report.attention, report.exitCode, report.dryRun);
        logger[final.level]({ runId: report.runId, exitCode: report.exitCode, attention: report.attention }, final.message);
        ctx.exit(report.exitCode);
      },
    );
}

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 32) throw new InvalidArgumentError('a whole number from 1 to 32');
  return n;
}
