import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../config/load-config.js';
import type { ResolvedConfig } from '../config/types.js';
import { createLogger } from './logger.js';
import { terminalSafe } from './terminal-safe.js';
import type { LogFormat } from './logger.js';

export interface CommonOptions {
  config?: string;
  json?: boolean;
  logFormat?: LogFormat;
  /** Explicit --log-level; absent: info with --verbose, warn with --quiet or on a terminal, else info. */
  logLevel?: string;
  verbose?: boolean;
  quiet?: boolean;
}

/** Options every command takes (SPEC §3: `--config` before or after the command name). */
export function withCommonOptions(command: Command): Command {
  return command
    .option('-c, --config <path>', 'config file (default: $BISYNC_CONFIG or ./sync.config.yaml)')
    .option('--json', 'print one JSON document on stdout')
    .addOption(new Option('--log-format <format>', 'log format on stderr').choices(['json', 'pretty']))
    .addOption(
      new Option('--log-level <level>', 'log level (default: warn on a terminal, info otherwise, e.g. under cron)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']),
    )
    .option('-v, --verbose', 'log one line per step (info level) on a terminal too');
}

/** What a command's action gets from the CLI: its merged options, a logger, the config, the exit code. */
export class CliContext {
  exitCode = 0;
  json: boolean;

  constructor(argv: readonly string[]) {
    this.json = argv.includes('--json');
  }

  options(command: Command): CommonOptions {
    const merged = command.optsWithGlobals<CommonOptions>();
    this.json = merged.json === true;
    return merged;
  }

  logger(command: Command): Logger {
    const opts = this.options(command);
    return createLogger(opts.logFormat, this.logLevel(command));
  }

  /** The log level in effect: --log-level, else info with --verbose, warn with --quiet or on a terminal, else info. */
  logLevel(command: Command): string {
    const opts = this.options(command);
    if (opts.logLevel !== undefined) return opts.logLevel;
    if (opts.verbose === true) return 'info';
    if (opts.quiet === true || process.stderr.isTTY === true) return 'warn';
    return 'info';
  }

  async config(command: Command, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedConfig> {
    return await loadConfig(configPath(this.options(command).config, process.env), env);
  }

  /** Keep the most severe exit code seen. */
  exit(code: number): void {
    this.exitCode = Math.max(this.exitCode, code);
  }

  /** Human output: control characters in it (from catalog names, stored errors) are escaped. */
  print(text: string): void {
    const safe = terminalSafe(text);
    process.stdout.write(safe.endsWith('\n') ? safe : `${safe}\n`);
  }

  printJson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }
}

export const directionOption = (): Option =>
  new Option('--direction <direction>', 'which steps: forward, reverse, or both (forward steps, then reverse)').choices(['forward', 'reverse', 'both']).default('both');
export const modeOption = (): Option =>
  new Option('--mode <mode>', 'read mode').choices(['auto', 'full', 'incremental']).default('auto');
