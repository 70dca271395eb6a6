import { Command, CommanderError, Option } from 'commander';
import { applyCommand } from '../commands/apply.js';
import { planCommand } from '../commands/plan.js';
import { validateLive } from '../commands/validate.js';
import type { DirectionOption, ModeOption } from '../compiler/compile-plan.js';
import { applyText } from './apply-output.js';
import { planSql } from './plan-output.js';
import type { LiveReport } from '../commands/validate.js';
import { configPath, loadConfig } from '../config/load-config.js';
import { BisyncError, ConfigError, ExitCode } from '../errors.js';
import type { LiveProblem } from '../compiler/check-catalog.js';
import { createLogger } from './logger.js';
import type { LogFormat } from './logger.js';
import { validateJson, validateText } from './validate-output.js';

interface CommonOptions {
  config?: string;
  json?: boolean;
  logFormat?: LogFormat;
  logLevel: string;
}

function withCommonOptions(command: Command): Command {
  return command
    .option('-c, --config <path>', 'config file (default: $BISYNC_CONFIG or ./sync.config.yaml)')
    .option('--json', 'print one JSON document on stdout')
    .addOption(new Option('--log-format <format>', 'log format on stderr').choices(['json', 'pretty']))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'));
}

/** Run the CLI with `argv` (as in process.argv); resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode: number = ExitCode.ok;
  let json = argv.includes('--json');
  const program = withCommonOptions(new Command('bisync'))
    .description('Keep chosen tables of two PostgreSQL databases in step, in both directions.')
    .version(await packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run bisync --help for usage)')
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    });

  const options = (command: Command): CommonOptions => {
    const merged = command.optsWithGlobals<CommonOptions>();
    json = merged.json === true;
    return merged;
  };

  withCommonOptions(program.command('validate'))
    .description('check the config; with --live, also both databases (read-only)')
    .option('--live', 'connect to both databases and check tables, columns, keys and types')
    .action(async (flags: { live?: boolean }, command: Command) => {
      const opts = options(command);
      const logger = createLogger(opts.logFormat, opts.logLevel);
      const config = await loadConfig(configPath(opts.config, process.env));
      let live: LiveReport | undefined;
      if (flags.live === true) {
        logger.debug({ databases: Object.keys(config.databases) }, 'reading both catalogs');
        live = await validateLive(config);
      }
      if (opts.json === true) process.stdout.write(`${JSON.stringify(validateJson(config, live), null, 2)}\n`);
      else process.stdout.write(`${validateText(config, live)}\n`);
      if (live !== undefined && live.problems.length > 0) {
        if (opts.json !== true) process.stderr.write(`${formatLiveProblems(config.file, live.problems)}\n`);
        exitCode = ExitCode.usage;
      }
    });

  withCommonOptions(program.command('plan'))
    .description('print the SQL each step would run, with parameters, the mode chosen and why; writes nothing')
    .addOption(new Option('--direction <direction>', 'which steps').choices(['forward', 'reverse', 'both']).default('both'))
    .option('--table <names...>', 'only these tables (config names)')
    .addOption(new Option('--mode <mode>', 'read mode').choices(['auto', 'full', 'incremental']).default('auto'))
    .addOption(new Option('--format <format>', 'output format').choices(['sql', 'json']).default('sql'))
    .action(async (flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; format: 'sql' | 'json' }, command: Command) => {
      const opts = options(command);
      const config = await loadConfig(configPath(opts.config, process.env));
      const plan = await planCommand(config, { direction: flags.direction, tables: flags.table ?? [], mode: flags.mode });
      process.stdout.write(opts.json === true || flags.format === 'json' ? `${JSON.stringify(plan, null, 2)}\n` : planSql(plan));
    });

  withCommonOptions(program.command('apply'))
    .description('run the steps: stream, merge, record; a summary per step')
    .addOption(new Option('--direction <direction>', 'which steps').choices(['forward', 'reverse', 'both']).default('both'))
    .option('--table <names...>', 'only these tables (config names)')
    .addOption(new Option('--mode <mode>', 'read mode').choices(['auto', 'full', 'incremental']).default('auto'))
    .option('--dry-run', 'run every step in a transaction that rolls back, and report what would change')
    .option('--allow-deletes', 'let deletes: mirror remove more than max_delete_fraction')
    .action(
      async (
        flags: { direction: DirectionOption; table?: string[]; mode: ModeOption; dryRun?: boolean; allowDeletes?: boolean },
        command: Command,
      ) => {
        const opts = options(command);
        const logger = createLogger(opts.logFormat, opts.logLevel);
        const config = await loadConfig(configPath(opts.config, process.env));
        const report = await applyCommand(config, {
          direction: flags.direction,
          tables: flags.table ?? [],
          mode: flags.mode,
          dryRun: flags.dryRun === true,
          allowDeletes: flags.allowDeletes === true,
          logger,
        });
        process.stdout.write(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${applyText(report)}\n`);
        exitCode = report.exitCode;
      },
    );

  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    return reportError(error, json);
  }
  return exitCode;
}

function formatLiveProblems(file: string, problems: readonly LiveProblem[]): string {
  const lines = problems.map(
    (p) =>
      `${file}:${p.location.line}:${p.location.column}: table "${p.table}" on ${p.database} (${p.relation}): ${p.message}` +
      (p.hint === undefined ? '' : `\n    hint: ${p.hint}`),
  );
  return `${problems.length} problem${problems.length === 1 ? '' : 's'} against the live databases:\n${lines.join('\n')}`;
}

/** The one place errors become output and exit codes (SPEC §3). */
function reportError(error: unknown, json: boolean): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage;
  }
  if (error instanceof BisyncError) {
    if (json) {
      const problems = error instanceof ConfigError ? error.problems : undefined;
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message: error.message, hint: error.hint, problems } }, null, 2)}\n`);
    }
    process.stderr.write(`error: ${error.message}${error.hint === undefined ? '' : `\n  hint: ${error.hint}`}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: 'INTERNAL', message } }, null, 2)}\n`);
  process.stderr.write(`error: ${message}\n${error instanceof Error && error.stack !== undefined ? `${error.stack}\n` : ''}`);
  return ExitCode.stepFailed;
}

async function packageVersion(): Promise<string> {
  const { default: pkg } = await import('../../package.json', { with: { type: 'json' } });
  return pkg.version;
}
