import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { applyText } from '../apply-output.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';

export function registerDemo(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('demo'))
    .description('start two embedded PostgreSQL servers, load a sample, sync both ways, show the result, clean up')
    .addOption(new Option('--scale <factor>', 'sample size (1 ≈ 92k rows)').default('0.05').argParser(parseScale))
    .action(async (flags: { scale: number | string }, command: Command) => {
      const logger = ctx.logger(command);
      // Loaded on demand: only the demo starts embedded servers.
      const { demoCommand } = await import('../../commands/demo.js');
      const narrative: string[] = [];
      const outcome = await demoCommand({
        scale: Number(flags.scale),
        // The narrative is the demo's output; step logs only when asked for below info.
        logger: ctx.options(command).logLevel === undefined && ctx.options(command).verbose !== true ? logger.child({}, { level: 'warn' }) : logger,
        // With --json the narrative goes into the document instead of the terminal.
        say: (text) => (ctx.json ? narrative.push(text) : ctx.print(`${text}\n`)),
        showReport: applyText,
        showPlan: (plan) =>
          plan.steps.map((s) => `   ${s.table} ${s.direction}: ${s.mode} — ${s.reason}`).join('\n'),
      });
      const ok =
        outcome.mobileRowReachedDesktop &&
        outcome.mobileRowUntouchedOnCloud &&
        outcome.desktopEditReachedCloud &&
        outcome.phoneEditReachedDesktop &&
        outcome.conflictParked &&
        outcome.conflictResolved &&
        outcome.secondRunExitCode === 0;
      if (ctx.json) ctx.printJson({ ok, ...outcome, narrative });
      else ctx.print(ok ? 'Demo finished: every row reached the other side and nothing was lost.' : 'Demo finished with a problem (see above).');
      ctx.exit(ok ? ExitCode.ok : ExitCode.stepFailed);
    });
}

function parseScale(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('it must be a positive number.');
  return n;
}
