import type { Command } from 'commander';
import { statusCommand } from '../../commands/status.js';
import type { StepStatus } from '../../commands/status.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render.js';

export function registerStatus(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('status'))
    .description('per step: watermark, last run and result, pending rejects, rows waiting on the source; writes nothing')
    .option('--table <names...>', 'only these tables (config names)')
    .action(async (flags: { table?: string[] }, command: Command) => {
      const config = await ctx.config(command);
      const steps = await statusCommand(config, flags.table ?? []);
      if (ctx.json) ctx.printJson({ config: config.file, steps });
      else ctx.print(statusText(steps));
    });
}

function statusText(steps: readonly StepStatus[]): string {
  const rows = [
    ['table', 'direction', 'watermark', 'last run', 'result', 'mode', 'read', 'written', 'rejects pending', 'waiting'],
    ...steps.map((s) => [
      s.table,
      `${s.direction} (${s.source} → ${s.target})`,
      s.watermark ?? '-',
      s.lastRun?.finishedAt ?? 'never',
      s.lastRun?.status ?? '-',
      s.lastRun?.mode ?? '-',
      s.lastRun === null ? '-' : String(s.lastRun.read),
      s.lastRun === null ? '-' : String(s.lastRun.inserted + s.lastRun.updated + s.lastRun.deleted),
      String(s.pendingRejects),
      s.waiting === null ? 'full compare' : String(s.waiting),
    ]),
  ];
  const failures = steps.filter((s) => s.lastRun?.error !== null && s.lastRun?.error !== undefined).map((s) => `${s.table} ${s.direction}: last run ${s.lastRun?.status}: ${s.lastRun?.error}`);
  return [renderTable(rows), ...failures, '', '"waiting" counts rows on the source newer than the watermark; "full compare" means the source has no cursor columns and every run reads it in full.'].join('\n');
}
