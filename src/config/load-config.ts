import { readFile } from 'node:fs/promises';
import { BisyncError, ConfigError, ExitCode } from '../errors.js';
import type { ConfigProblem } from '../errors.js';
import { interpolateEnv } from './interpolate.js';
import { findUnknownTableKeys, resolveConfig } from './resolve-config.js';
import { checkSchema } from './schema-check.js';
import type { RawConfig, ResolvedConfig } from './types.js';
import { YamlSource } from './yaml-source.js';

export const DEFAULT_CONFIG_PATH = './sync.config.yaml';

/** The config path to use: `--config`, then BISYNC_CONFIG, then ./sync.config.yaml. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env.BISYNC_CONFIG;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG_PATH;
}

/** Parse, interpolate, schema-check and resolve config text; every problem is reported at once. */
export function parseConfig(file: string, text: string, env: NodeJS.ProcessEnv): ResolvedConfig {
  const { source, problems } = YamlSource.parse(file, text);
  if (problems.length > 0) throw new ConfigError(problems);
  const envProblems = interpolateEnv(source, env);
  const raw: unknown = source.toJS();
  const unknownKeys = findUnknownTableKeys(raw, source);
  const shape: ConfigProblem[] = [...envProblems, ...unknownKeys.problems, ...checkSchema(raw, source, unknownKeys.paths)];
  if (shape.length === 0) {
    const { config, problems } = resolveConfig(raw as RawConfig, source, env);
    if (config !== undefined) return config;
    throw new ConfigError(sortProblems(problems));
  }
  // Report the semantic rules too, so one run shows everything; a shape that breaks them is already
  // reported, so drop anything at or under a path that has a problem.
  let semantic: ConfigProblem[] = [];
  try {
    semantic = resolveConfig(raw as RawConfig, source, env).problems;
  } catch {
    semantic = [];
  }
  const taken = shape.map((p) => p.path);
  const overlaps = (a: string, b: string): boolean => a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`);
  const extra = semantic.filter((p) => !taken.some((t) => overlaps(p.path, t) || overlaps(t, p.path)));
  throw new ConfigError(sortProblems([...shape, ...extra]));
}

/** Read and resolve the config file at `file` (as the user named it). */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BisyncError('CONFIG_UNREADABLE', `${file}: ${missing ? 'no such file' : 'cannot be read'}`, {
      exitCode: ExitCode.usage,
      hint: missing
        ? 'pass --config PATH or set BISYNC_CONFIG; `bisync init` writes a starter config'
        : 'check the file permissions',
      cause,
    });
  }
  return parseConfig(file, text, env);
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}
