import { accessSync, constants, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BisyncError, ConfigError, ExitCode } from '../errors.js';
import type { ConfigProblem } from '../errors.js';
import { interpolateEnv } from './interpolate.js';
import { findUnknownTableKeys, resolveConfig } from './resolve-config.js';
import type { ResolveChecks } from './resolve-config.js';
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
export function parseConfig(file: string, text: string, env: NodeJS.ProcessEnv, checks: ResolveChecks = {}): ResolvedConfig {
  const { source, problems } = YamlSource.parse(file, text);
  if (problems.length > 0) throw new ConfigError(problems);
  const envProblems = interpolateEnv(source, env);
  const plain = source.toJS();
  if ('problem' in plain) throw new ConfigError([plain.problem]);
  const raw: unknown = plain.value;
  const unknownKeys = findUnknownTableKeys(raw, source);
  const shape: ConfigProblem[] = [...envProblems, ...unknownKeys.problems, ...checkSchema(raw, source, unknownKeys.paths)];
  if (shape.length === 0) {
    const { config, problems } = resolveConfig(raw as RawConfig, source, env, checks);
    if (config !== undefined) return config;
    throw new ConfigError(sortProblems(problems));
  }
  // Report the semantic rules too, so one run shows everything; a shape that breaks them is already
  // reported, so drop anything at or under a path that has a problem.
  let semantic: ConfigProblem[] = [];
  try {
    semantic = resolveConfig(raw as RawConfig, source, env, checks).problems;
  } catch {
    semantic = [];
  }
  const taken = shape.map((p) => p.path);
  const overlaps = (a: string, b: string): boolean => a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`);
  const extra = semantic.filter((p) => !taken.some((t) => overlaps(p.path, t) || overlaps(t, p.path)));
  throw new ConfigError(sortProblems([...shape, ...extra]));
}

/** A config is a few kilobytes; anything past this is not one (e.g. `--config /dev/zero`). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Read and resolve the config file at `file` (as the user named it). */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedConfig> {
  return parseConfig(file, await readConfigText(file), env, { caReadable: canRead });
}

/**
 * The text of a config file: a regular file (a FIFO or a device would hang or never end) of at
 * most MAX_CONFIG_BYTES. Opened without blocking and checked on the open file, so it cannot be
 * swapped between the check and the read.
 */
export async function readConfigText(file: string): Promise<string> {
  const unreadable = (reason: string, hint: string, cause?: unknown): BisyncError =>
    new BisyncError('CONFIG_UNREADABLE', `${file}: ${reason}`, { exitCode: ExitCode.usage, hint, ...(cause === undefined ? {} : { cause }) });
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw unreadable(
      missing ? 'no such file' : 'cannot be read',
      missing ? 'pass --config PATH or set BISYNC_CONFIG; `bisync init` writes a starter config' : 'check the file permissions',
      cause,
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw unreadable('is not a regular file', 'pass the path of the YAML config file itself');
    if (stat.size > MAX_CONFIG_BYTES) throw unreadable(`is ${stat.size} bytes, more than a config can be (${MAX_CONFIG_BYTES})`, 'pass the path of the YAML config file itself');
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) throw unreadable(`is more than ${MAX_CONFIG_BYTES} bytes`, 'pass the path of the YAML config file itself');
    }
    return buffer.subarray(0, length).toString('utf8');
  } catch (cause) {
    if (cause instanceof BisyncError) throw cause;
    throw unreadable('cannot be read', 'check the file permissions', cause);
  } finally {
    await handle.close();
  }
}

function canRead(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}
