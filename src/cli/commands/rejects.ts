import { Argument, Option } from 'commander';
import type { Command } from 'commander';
import type { RejectsActionReport, RejectsReport } from '../../commands/rejects.js';
import type { RejectsAction } from '../../compiler/compile-rejects.js';
import type { Direction } from '../../config/types.js';
import { BisyncError, ExitCode } from '../../errors.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render.js';

export function registerRejects(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('rejects'))
    .description(
      'list the rows a step could not write (reason, key, attempts, first seen, the row; exit 1 when any are pending; writes nothing), ' +
        'or act on one table\'s rejects: retry (the next run tries them with attempts starting over) or discard (no run tries them again)',
    )
    .addArgument(new Argument('[action]', 'what to do').choices(['list', 'retry', 'discard']).default('list'))
    .option('--table <names...>', 'only these tables (config names); retry and discard take exactly one')
    .option('--key <key>', 'retry/discard one reject: the key value, or a JSON object {"column": value, …} for a composite key')
    .option('--all', 'retry/discard every reject of the table')
    .addOption(new Option('--direction <direction>', 'retry/discard: only this step').choices(['forward', 'reverse']))
    .action(async (action: 'list' | RejectsAction, flags: { table?: string[]; key?: string; all?: boolean; direction?: Direction }, command: Command) => {
      const config = await ctx.config(command);
      if (action === 'list') {
        const { listRejects } = await import('../../commands/rejects.js');
        const report = await listRejects(config, flags.table ?? []);
        if (ctx.json) ctx.printJson({ ok: report.ok, config: config.file, rejects: report.rejects });
        else ctx.print(rejectsText(report));
        ctx.exit(report.exitCode);
        return;
      }
      const table = flags.table?.length === 1 ? flags.table[0] : undefined;
      if (table === undefined || (flags.key === undefined) === (flags.all !== true)) {
        throw new BisyncError('REJECTS_WHICH', `rejects ${action} needs one --table and exactly one of --key K and --all`, {
          exitCode: ExitCode.usage,
          hint: `bisync rejects ${action} --table customers --key 42   (or --all)`,
        });
      }
      const { actOnRejects } = await import('../../commands/rejects.js');
      const report = await actOnRejects(config, action, table, flags.key ?? null, flags.direction ?? null);
      if (ctx.json) ctx.printJson(report);
      else ctx.print(actionText(action, report));
    });
}

function keyText(key: Record<string, string>): string {
  const entries = Object.entries(key);
  return entries.length === 1 ? (entries[0]?.[1] ?? '') : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

function rejectsText(report: RejectsReport): string {
  if (report.rejects.length === 0) return 'No rejects pending.';
  const rows = [
    ['table', 'direction', 'key', 'reason', 'attempts', 'first seen', 'error'],
    ...report.rejects.map((r) => [
      r.table,
      `${r.direction} (to ${r.database})`,
      keyText(r.key),
      r.reason,
      String(r.attempts),
      r.firstSeen,
      r.error === null ? '-' : `${r.errorCode === null ? '' : `${r.errorCode} `}${r.error}`,
    ]),
  ];
  return [
    renderTable(rows),
    '',
    `${report.rejects.length} reject${report.rejects.length === 1 ? '' : 's'} pending; every run tries them again. The rows are in --json.`,
    'Fix the cause (on the source, or the target\'s constraint), then: bisync rejects retry --table T --all   (or discard --table T --key K to drop one)',
  ].join('\n');
}

function actionText(action: RejectsAction, report: RejectsActionReport): string {
  const n = report.rows.length;
  const verb = action === 'retry' ? 'marked for the next run' : 'discarded';
  return [`${n} reject${n === 1 ? '' : 's'} ${verb}.`, ...report.rows.map((r) => `  ${r.table} ${r.direction} (on ${r.database}): ${keyText(r.key)}`)].join('\n');
}
