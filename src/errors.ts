/** Exit codes of SPEC §3. */
export const ExitCode = {
  ok: 0,
  stepFailed: 1,
  usage: 2,
  locked: 3,
  guard: 4,
  /** Interrupted by Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The base of every error bisync reports to a person: a stable code, one sentence, and a hint. */
export class BisyncError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(
    code: string,
    message: string,
    options: { exitCode: ExitCode; hint?: string; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode;
    this.hint = options.hint;
  }
}

/** One problem found in a configuration file, located in the YAML source. */
export interface ConfigProblem {
  /** The file as the user named it. */
  file: string;
  /** 1-based; 0 when the problem has no position (e.g. the file is missing). */
  line: number;
  column: number;
  /** Dotted key path, e.g. `tables[2].after[0]`; empty for the whole file. */
  path: string;
  message: string;
  hint?: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  const path = p.path === '' ? '' : ` ${p.path}:`;
  return `${where}:${path} ${p.message}${p.hint === undefined ? '' : `\n    hint: ${p.hint}`}`;
}

/** Every problem of a configuration file at once (exit 2). */
export class ConfigError extends BisyncError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const count = problems.length;
    super(
      'CONFIG_INVALID',
      `${count} problem${count === 1 ? '' : 's'} in the configuration:\n${problems.map(formatProblem).join('\n')}`,
      { exitCode: ExitCode.usage },
    );
    this.problems = problems;
  }
}
