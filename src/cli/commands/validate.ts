import type { Command } from 'commander';
import { configPath, readConfigText } from '../../config/load-config.js';
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
      // Without --live the file is checked alone: a database URL variable that is not set here (it
      // may be set only where the job runs) stands in as a placeholder, and is named.
      const unset = flags.live === true ? [] : await unsetUrlVariables(configPath(ctx.options(command).config, process.env));
      const env = { ...process.env, ...Object.fromEntries(unset.map((name) => [name, `postgresql://localhost/${name}-not-set`])) };
      const config = await ctx.config(command, env);
      const live: LiveReport | undefined = flags.live === true ? await (await import('../../commands/validate.js')).validateLive(config) : undefined;
      if (ctx.json) ctx.printJson({ ...(validateJson(config, live) as object), ...(unset.length === 0 ? {} : { unsetVariables: unset }) });
      else ctx.print(validateText(config, live));
      if (unset.length > 0 && !ctx.json) {
        process.stderr.write(`note: ${unset.join(', ')} ${unset.length === 1 ? 'is' : 'are'} not set here: the file was checked alone; validate --live needs ${unset.length === 1 ? 'it' : 'them'}\n`);
      }
      if (live !== undefined && live.warnings.length > 0 && !ctx.json) {
        process.stderr.write(`${formatLiveProblems(config.file, live.warnings, 'warning')}\n`);
      }
      if (live !== undefined && live.problems.length > 0) {
        if (!ctx.json) process.stderr.write(`${formatLiveProblems(config.file, live.problems, 'problem')}\n`);
        ctx.exit(ExitCode.usage);
      }
    });
}

/** Variables referenced by a database `url:` of the config that are unset or empty here (none when the file cannot be read: loading reports that). */
async function unsetUrlVariables(file: string): Promise<string[]> {
  let text: string;
  try {
    // The same guarded read as the config itself: a FIFO or /dev/zero must not hang or fill memory here either.
    text = await readConfigText(file);
  } catch {
    return [];
  }
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (!/^\s*url:/.test(line)) continue;
    for (const m of line.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
      const name = m[1] ?? '';
      const value = process.env[name];
      if (value === undefined || value === '') names.add(name);
    }
  }
  return [...names];
}

function formatLiveProblems(file: string, problems: readonly LiveProblem[], kind: 'problem' | 'warning'): string {
  const lines = (kind === 'warning' ? sameWarnings(problems) : problems.map((p) => [p])).map((group) => {
    const [p] = group;
    if (p === undefined) return '';
    const where =
      group.length === 1
        ? `table "${p.table}" on ${p.database} (${p.relation})`
        : `${group.length} tables on ${p.database}: ${group.map((g) => `"${g.table}" (${g.relation}, line ${g.location.line})`).join(', ')}`;
    const hint = p.hint === undefined ? '' : `\n    hint${group.length === 1 ? '' : `, e.g. for "${p.table}"`}: ${p.hint}`;
    return `${file}:${p.location.line}:${p.location.column}: ${where}: ${p.message}${hint}`;
  });
  const what = kind === 'problem' ? 'against the live databases' : 'against the live databases (the config runs, but review these)';
  return `${problems.length} ${kind}${problems.length === 1 ? '' : 's'} ${what}:\n${lines.join('\n')}`;
}

/** Warnings with the same message on the same database, grouped (one line names every table), in first-seen order. */
function sameWarnings(warnings: readonly LiveProblem[]): LiveProblem[][] {
  const groups = new Map<string, LiveProblem[]>();
  for (const w of warnings) {
    const key = `${w.database}\u0000${w.message}`;
    groups.set(key, [...(groups.get(key) ?? []), w]);
  }
  return [...groups.values()];
}
