import { Option } from 'commander';
import type { Command } from 'commander';
import { planCommand } from '../../commands/plan.js';
import type { DirectionOption, ModeOption } from '../../compiler/compile-plan.js';
import { ExitCode } from '../../errors.js';
import { directionOption, modeOption, withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { planSql, planSummary } from '../plan-output.js';

export function registerPlan(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('plan'))
    .description('print the SQL each step would run, with parameters, the mode chosen and why; writes nothing')
    .addOption(directionOption())
    .option('--table <names...>', 'only these tables (config names)')
    .addOption(modeOption())
    .addOption(new Option('--format <format>', 'text: a summary per step, then the SQL; sql: only the SQL; json: the plan as one document').choices(['text', 'sql', 'json']).default('text'))
    .action(async (flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; format: 'text' | 'sql' | 'json' }, command: Command) => {
      const config = await ctx.config(command);
      const plan = await planCommand(config, { direction: flags.direction, tables: flags.table ?? [], mode: flags.mode });
      if (ctx.json || flags.format === 'json') ctx.printJson(plan);
      else if (flags.format === 'sql') ctx.print(planSql(plan));
      else ctx.print(`${planSummary(plan)}\n${planSql(plan)}`);
      // Steps that cannot run are failures of the run to come (apply exits 1 too); the others are planned.
      if ((plan.unplanned ?? []).length > 0) ctx.exit(ExitCode.stepFailed);
    });
}
