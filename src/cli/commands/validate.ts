import type { Command } from 'commander';
import { validateLive } from '../../commands/validate.js';
import type { LiveReport } from '../../commands/validate.js';
import type { LiveProblem } from '../../compiler/check-catalog.js';
import { ExitCode } from '../../errors.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { validateJson, validateText } from '../validate-output.js';

export function registerValidate(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('validate'))
    .description('check the config; with --live, also both databases (read-only)')
    .option('--live', 'connect to both databases and check tables, columns, keys and types')
    .action(async (flags: { live?: boolean }, command: Command) => {
      const config = await ctx.config(command);
      const live: LiveReport | undefined = flags.live === true ? await validateLive(config) : undefined;
      if (ctx.json) ctx.printJson(validateJson(config, live));
      else ctx.print(validateText(config, live));
      if (live !== undefined && live.warnings.length > 0 && !ctx.json) {
        process.stderr.write(`${formatLiveProblems(config.file, live.warnings, 'warning')}\n`);
      }
      if (live !== undefined && live.problems.length > 0) {
        if (!ctx.json) process.stderr.write(`${formatLiveProblems(config.file, live.problems, 'problem')}\n`);
        ctx.exit(ExitCode.usage);
      }
    });
}

function formatLiveProblems(file: string, problems: readonly LiveProblem[], kind: 'problem' | 'warning'): string {
  const lines = problems.map(
    (p) =>
      `${file}:${p.location.line}:${p.location.column}: table "${p.table}" on ${p.database} (${p.relation}): ${p.message}` +
      (p.hint === undefined ? '' : `\n    hint: ${p.hint}`),
  );
  const what = kind === 'problem' ? 'against the live databases' : 'against the live databases (the config runs, but review these)';
  return `${problems.length} ${kind}${problems.length === 1 ? '' : 's'} ${what}:\n${lines.join('\n')}`;
}
