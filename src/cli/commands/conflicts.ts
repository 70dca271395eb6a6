import type { Command } from 'commander';
import type { ConflictsReport } from '../../commands/conflicts.js';
import { BisyncError, ExitCode } from '../../errors.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render.js';

export function registerConflicts(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('conflicts'))
    .description('the pending conflicts of edits: both tables: table, key, kind, each side\'s version column by column, the base\'s age; exit 1 when any; writes nothing')
    .option('--table <names...>', 'only these tables (config names)')
    .action(async (flags: { table?: string[] }, command: Command) => {
      const config = await ctx.config(command);
      const { listConflicts } = await import('../../commands/conflicts.js');
      const report = await listConflicts(config, flags.table ?? []);
      if (ctx.json) ctx.printJson({ ok: report.ok, config: config.file, conflicts: report.conflicts.map(({ baseKey: _k, versions, ...c }) => ({ ...c, ...versions })) });
      else ctx.print(conflictsText(report, Object.keys(config.databases)));
      ctx.exit(report.exitCode);
    });

  withCommonOptions(program.command('resolve'))
    .description('settle conflicts of one table: write the kept database\'s version (or its delete) to both sides, record it as agreed, clear the conflict')
    .requiredOption('--table <name>', 'the table (config name)')
    .option('--key <key>', 'one conflict: the key value, or a JSON object {"column": value, …} for a composite key')
    .option('--all', 'every pending conflict of the table')
    .requiredOption('--keep <database>', 'the database whose version wins')
    .action(async (flags: { table: string; key?: string; all?: boolean; keep: string }, command: Command) => {
      const config = await ctx.config(command);
      if ((flags.key === undefined) === (flags.all !== true)) {
        throw new BisyncError('RESOLVE_WHICH', 'resolve needs exactly one of --key K and --all', { exitCode: ExitCode.usage, hint: `bisync resolve --table ${flags.table} --key 42 --keep ${config.forward.from}` });
      }
      const { resolveConflicts } = await import('../../commands/conflicts.js');
      const report = await resolveConflicts(config, flags.table, flags.key ?? null, flags.keep);
      if (ctx.json) ctx.printJson(report);
      else {
        const n = report.resolved.length;
        ctx.print([`${n} conflict${n === 1 ? '' : 's'} of ${report.table} resolved: ${report.keep}'s version kept on both sides.`, ...report.resolved.map((k) => `  ${keyText(k)}`)].join('\n'));
      }
    });
}

function keyText(key: Record<string, string>): string {
  const entries = Object.entries(key);
  return entries.length === 1 ? (entries[0]?.[1] ?? '') : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

const show = (value: unknown): string => (value === undefined ? '' : value === null ? 'NULL' : typeof value === 'string' ? value : JSON.stringify(value));

function conflictsText(report: ConflictsReport, databases: readonly string[]): string {
  if (report.conflicts.length === 0) return 'No conflicts pending.';
  const out: string[] = [];
  for (const c of report.conflicts) {
    out.push(`${c.table} ${keyText(c.key)}: ${c.kind}, detected ${c.firstDetected}; both sides last agreed ${c.baseAgreedAt ?? 'never'}`);
    const columns = [...new Set(databases.flatMap((db) => Object.keys(c.versions[db] ?? {})))];
    const rows = [['column', ...databases], ...columns.map((col) => [col, ...databases.map((db) => (c.versions[db] === null ? '(deleted)' : show(c.versions[db]?.[col])))])];
    out.push(renderTable(rows), '');
  }
  const [first] = report.conflicts;
  out.push(
    `${report.conflicts.length} conflict${report.conflicts.length === 1 ? '' : 's'} pending; runs leave these keys alone until resolved (or until both sides are made equal).`,
    `Keep one side: bisync resolve --table ${first?.table ?? 'T'} --key ${first === undefined ? 'K' : keyText(first.key)} --keep ${databases[0] ?? 'desktop'}   (or --all)`,
  );
  return out.join('\n');
}
