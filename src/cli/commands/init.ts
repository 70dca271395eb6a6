import type { Command } from 'commander';
import type { InitReport } from '../../commands/init.js';
import { urlPassword } from '../../config/database-url.js';
import { BisyncError, ExitCode } from '../../errors.js';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';

const DEFAULT_INIT_OUT = 'sync.config.yaml';

export function registerInit(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('init'))
    .description('introspect both databases (read-only) and write a starter config')
    .option('--desktop <url>', 'desktop database URL (default: $DESKTOP_DATABASE_URL)')
    .option('--cloud <url>', 'cloud database URL (default: $CLOUD_DATABASE_URL)')
    .option('--out <file>', 'where to write the config', DEFAULT_INIT_OUT)
    .option('--force', 'replace --out if it exists')
    .action(async (flags: { desktop?: string; cloud?: string; out: string; force?: boolean }, command: Command) => {
      const logger = ctx.logger(command);
      for (const [side, flag] of [['desktop', flags.desktop], ['cloud', flags.cloud]] as const) {
        if (flag !== undefined && urlPassword(flag) !== undefined) {
          // The argument list of a process is visible to every local user (ps, /proc/<pid>/cmdline).
          logger.warn(
            `--${side} holds a password, which every user of this machine can read in the process list while init runs; set ${side.toUpperCase()}_DATABASE_URL in the environment instead (and change the password if this machine is shared)`,
          );
        }
      }
      const { initCommand } = await import('../../commands/init.js');
      const report = await initCommand({
        urls: { desktop: urlFrom(flags.desktop, 'desktop', 'DESKTOP_DATABASE_URL'), cloud: urlFrom(flags.cloud, 'cloud', 'CLOUD_DATABASE_URL') },
        out: flags.out,
        force: flags.force === true,
        logger,
      });
      if (ctx.json) ctx.printJson({ ok: true, ...report });
      else ctx.print(initText(report));
    });
}

function urlFrom(flag: string | undefined, side: string, variable: string): string {
  const value = flag ?? process.env[variable];
  if (value === undefined || value === '') {
    throw new BisyncError('INIT_NO_URL', `no ${side} database URL`, { exitCode: ExitCode.usage, hint: `pass --${side} URL or set ${variable}` });
  }
  return value;
}

function initText(report: InitReport): string {
  const both = report.tables.filter((t) => t.direction === 'both').length;
  const lines = [
    `wrote ${report.file}: ${report.tables.length} table${report.tables.length === 1 ? '' : 's'} (${both} both ways, ${report.tables.length - both} one way)`,
    ...report.databases.map((d) => `  ${d.name}: ${d.host}:${d.port}/${d.database}, PostgreSQL ${Math.floor(d.serverVersion / 10000)}.${d.serverVersion % 10000}`),
  ];
  if (report.skipped.length > 0) lines.push(`  not synced (no usable key or unfillable columns): ${report.skipped.map((s) => s.name).join(', ')}`);
  for (const side of ['desktop', 'cloud'] as const) {
    if (report.onlyOn[side].length > 0) lines.push(`  only on ${side}: ${report.onlyOn[side].join(', ')}`);
  }
  const unmarkable = report.tables.filter((t) => t.origin !== null && (t.origin.allowsNull || !t.origin.hasDefault));
  if (unmarkable.length > 0) {
    lines.push(
      `  warning: on cloud, the origin column of ${unmarkable.map((t) => `${t.name}.${t.origin?.column ?? ''}`).join(', ')} allows NULL or has no default:`,
      '    a row an app inserts without its marker is unmarked; bisync never deletes it and reverse never sends it (apply, status and verify report it).',
      "    Give the column a default (the cloud app's marker) and SET NOT NULL, or make sure every app sets it.",
    );
  }
  lines.push(
    '',
    `${report.guesses} guess${report.guesses === 1 ? '' : 'es'} marked GUESS in the file: review them, then check the file against both databases:`,
    `  DESKTOP_DATABASE_URL=... CLOUD_DATABASE_URL=... bisync validate --live --config ${report.file}`,
  );
  return lines.join('\n');
}
