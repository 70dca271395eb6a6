import { Option } from 'commander';
import type { Command } from 'commander';
import type { DirectionOption, ModeOption } from '../../compiler/compile-plan.js';
import { ExitCode } from '../../errors.js';
import { directionOption, modeOption, withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';

export function registerPlan(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('plan'))
    .description('print the SQL each step would run, with parameters, the mode chosen and why; writes nothing')
    .addOption(directionOption())
    .option('--table <names...>', 'only these tables (config names)')
    .addOption(modeOption())
    .addOption(new Option('--format <format>', 'text: a summary per step, then the SQL; sql: only the SQL; json: the plan as one document').choices(['text', 'sql', 'json']).default('text'))
    .option('--out <file>', 'also save the plan to FILE, for apply --plan FILE (which refuses it once the catalog or state changed)')
    .action(async (flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; format: 'text' | 'sql' | 'json'; out?: string }, command: Command) => {
      const config = await ctx.config(command);
      const options = { direction: flags.direction, tables: flags.table ?? [], mode: flags.mode };
      const [{ planReview, writeSavedPlan }, { planSql, planSummary }] = await Promise.all([import('../../commands/plan.js'), import('../plan-output.js')]);
      const reviewed = await planReview(config, options);
      const { plan, waiting } = reviewed;
      if (flags.out !== undefined) {
        writeSavedPlan(flags.out, reviewed, options);
        process.stderr.write(`saved plan ${plan.hash.slice(0, 12)} to ${flags.out}: bisync apply --plan ${flags.out} runs exactly it, or refuses (exit 4) once the catalog or state changed\n`);
      }
      if (ctx.json || flags.format === 'json') ctx.printJson({ ...plan, waiting });
      else if (flags.format === 'sql') ctx.print(planSql(plan));
      else ctx.print(`${planSummary(plan, waiting)}\n${planSql(plan)}`);
      // Steps that cannot run are failures of the run to come (apply exits 1 too); the others are planned.
      if ((plan.unplanned ?? []).length > 0) ctx.exit(ExitCode.stepFailed);
    });
}
