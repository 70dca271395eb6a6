/**
 * Shared helpers of the config tests: parse text, collect the problems of a config that must fail,
 * and find where a piece of text sits in a config (1-based line and column) independently of the
 * loader, so position assertions check the loader against the text itself.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load-config.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import type { ConfigProblem } from '../../src/errors.js';

export const FILE = 'sync.config.yaml';

/** Environment of the SPEC example: a local desktop and a remote cloud, both with passwords. */
export const ENV: NodeJS.ProcessEnv = {
  DESKTOP_DATABASE_URL: 'postgres://office:desk-Pa55word@localhost:5432/practice',
  CLOUD_DATABASE_URL: 'postgres://postgres:cloud-Pa55word@db.example.supabase.co:5432/postgres',
};

export const SPEC_EXAMPLE_PATH = fileURLToPath(new URL('./fixtures/spec-example.yaml', import.meta.url));

/** The example of SPEC §1, verbatim. */
export const SPEC_EXAMPLE = readFileSync(SPEC_EXAMPLE_PATH, 'utf8');

/**
 * A template tag that strips the common indentation of the template (not of the values spliced
 * into it) and the first newline, so configs can be written indented in the test. A multi-line
 * value must carry the indentation it needs in the result. Write `\${VAR}` for a literal `${VAR}`.
 */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const marker = (i: number): string => `\u0000${i}\u0000`;
  const text = strings.reduce((out, s, i) => out + s + (i < values.length ? marker(i) : ''), '');
  const lines = text.replace(/^\n/, '').replace(/\n[ \t]*$/, '\n').split('\n');
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0);
  const cut = indents.length === 0 ? 0 : Math.min(...indents);
  const dedented = lines.map((l) => l.slice(cut)).join('\n');
  return dedented.replace(/\u0000(\d+)\u0000/g, (_m, i: string) => String(values[Number(i)]));
}

/** Two databases (desktop local, cloud remote), forward desktop → cloud, an origin rule in defaults. */
export const HEADER = yaml`
  version: 1
  databases:
    desktop:
      url: postgres://office@localhost:5432/practice
    cloud:
      url: postgres://postgres@db.example.com:5432/postgres
  forward: { from: desktop, to: cloud }
  defaults:
    origin: { column: source, forward: D, reverse: M }
`;

/** HEADER followed by `tables:` and the given table entries (written at column 1, `- name: ...`). */
export function withTables(tables: string): string {
  const body = tables
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  return `${HEADER}tables:\n${body}`;
}

/** Resolve a config that must be valid; on failure the assertion shows every problem. */
export function resolve(text: string, env: NodeJS.ProcessEnv = ENV, file = FILE): ResolvedConfig {
  try {
    return parseConfig(file, text, env);
  } catch (error) {
    if (error instanceof ConfigError) expect.fail(`expected a valid config, got:\n${error.message}`);
    throw error;
  }
}

/** The ConfigError a config that must be invalid throws. */
export function configError(text: string, env: NodeJS.ProcessEnv = ENV, file = FILE): ConfigError {
  try {
    parseConfig(file, text, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  return expect.fail('expected a ConfigError, but the config resolved');
}

export function problemsOf(text: string, env: NodeJS.ProcessEnv = ENV, file = FILE): readonly ConfigProblem[] {
  return configError(text, env, file).problems;
}

/** The single problem of a config that has exactly one mistake. */
export function onlyProblem(text: string, env: NodeJS.ProcessEnv = ENV): ConfigProblem {
  const problems = problemsOf(text, env);
  expect(problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`)).toHaveLength(1);
  const [problem] = problems;
  if (problem === undefined) return expect.fail('no problem');
  return problem;
}

/**
 * 1-based line and column of `target` inside the one occurrence of `context` in `text`
 * (`target` defaults to `context`). Fails if `context` is not exactly once in `text`.
 */
export function at(text: string, context: string, target: string = context): { line: number; column: number } {
  const first = text.indexOf(context);
  expect(first, `"${context}" is in the config`).toBeGreaterThanOrEqual(0);
  expect(text.indexOf(context, first + 1), `"${context}" is in the config only once`).toBe(-1);
  const within = context.indexOf(target);
  expect(within, `"${target}" is inside "${context}"`).toBeGreaterThanOrEqual(0);
  const offset = first + within;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/** The one problem at `path`, asserted to be at the position of `target` within `context`. */
export function problemAt(
  problems: readonly ConfigProblem[],
  path: string,
  text: string,
  context: string,
  target: string = context,
): ConfigProblem {
  const matching = problems.filter((p) => p.path === path);
  expect(matching.map((p) => p.message), `problems at ${path} (all: ${problems.map((p) => p.path).join(', ')})`).toHaveLength(1);
  const [problem] = matching;
  if (problem === undefined) return expect.fail(`no problem at ${path}`);
  expect({ line: problem.line, column: problem.column }).toEqual(at(text, context, target));
  return problem;
}
