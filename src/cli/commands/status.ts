import type { Command } from 'commander';
import type { StatusReport } from '../../commands/status.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render.js';

export function registerStatus(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('status'))
    .description('per step: watermark, last run and result, pending rejects, rows waiting on the source; exit 1 when something needs you; writes nothing')
    .option('--table <names...>', 'only these tables (config names)')
    .action(async (flags: { table?: string[] }, command: Command) => {
      const config = await ctx.config(command);
      const { statusCommand } = await import('../../commands/status.js');
      const report = await statusCommand(config, flags.table ?? []);
      if (ctx.json) ctx.printJson({ ok: report.ok, config: config.file, steps: report.steps, attention: report.attention, warnings: report.warnings });
      else ctx.print(statusText(report));
      ctx.exit(report.exitCode);
    });
}

function statusText(report: StatusReport): string {
  const rows = [
    ['table', 'direction', 'watermark', 'last run', 'result', 'mode', 'read', 'written', 'rejects pending', 'conflicts', 'waiting', 'round trips', 'kB sent / received'],
    ...report.steps.map((s) => [
      s.table,
      `${s.direction} (${s.source} → ${s.target})`,
      s.watermark ?? '-',
      s.lastRun?.finishedAt ?? 'never',
      s.lastRun?.status ?? '-',
      s.lastRun?.mode ?? '-',
      s.lastRun === null ? '-' : String(s.lastRun.read),
      s.lastRun === null ? '-' : String(s.lastRun.inserted + s.lastRun.updated + s.lastRun.deleted),
      String(s.pendingRejects),
      String(s.pendingConflicts),
      s.waiting === null ? 'full compare' : String(s.waiting),
      s.lastRun?.roundTrips == null ? '-' : String(s.lastRun.roundTrips),
      s.lastRun?.bytesSent == null || s.lastRun.bytesReceived == null ? '-' : `${kB(s.lastRun.bytesSent)} / ${kB(s.lastRun.bytesReceived)}`,
    ]),
  ];
  const attention =
    report.attention.length === 0
      ? ["Nothing needs you: every step's last run succeeded and no rows are pending."]
      : ['Needs you:', ...report.attention.map((a) => `  ${a}`)];
  return [
    renderTable(rows),
    '',
    ...attention,
    ...report.warnings.flatMap((w) => [`warning: ${w.database}: ${w.message}`, `  hint: ${w.hint}`]),
    '',
    '"waiting" counts rows on the source newer than the watermark; "full compare" means the source has no cursor columns and every run reads it in full.',
    '"round trips" and "kB sent / received" are the last run\'s cost on the wire, both databases together, counted when its run row was written.',
  ].join('\n');
}

const kB = (bytes: number): string => (bytes / 1000).toFixed(1);
