import { describe, expect, it } from 'vitest';
import { ExitCode, formatProblem } from '../../src/errors.js';
import { at, configError, withTables, yaml } from './helpers.js';

describe('all problems are reported at once', () => {
  // Five independent mistakes of different kinds.
  const text = withTables(yaml`
    - name: orgmaster
      primary_key: [org_id]
      direction: forwards
    - name: climaster
      primary_key: [client_id]
      after: [orgmastr]
    - name: orgmaster # twice
      primary_key: [org_id]
      timestamps: { clud: [updated_at] }
  `).replace('defaults:\n', 'defaults:\n  deletes: mirorr\n');

  it('a file with five independent mistakes yields five problems, sorted by line', () => {
    const err = configError(text);
    const where = (context: string, target?: string): [number, number] => {
      const { line, column } = at(text, context, target);
      return [line, column];
    };
    expect(err.problems.map((p) => [p.path, p.line, p.column])).toEqual([
      ['defaults.deletes', ...where('mirorr')],
      ['tables[0].direction', ...where('forwards')],
      ['tables[1].after[0]', ...where('orgmastr')],
      ['tables[2].name', ...where('orgmaster # twice', 'orgmaster')],
      ['tables[2].timestamps.clud', ...where('clud')],
    ]);
    const lines = err.problems.map((p) => p.line);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('the error is exit 2 and its message lists every problem as file:line:column, path, message and hint', () => {
    const err = configError(text, undefined, 'configs/../sync.config.yaml');
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.exitCode).toBe(2);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message.split('\n')[0]).toBe(`${err.problems.length} problems in the configuration:`);
    for (const p of err.problems) {
      expect(p.file).toBe('configs/../sync.config.yaml');
      expect(err.message).toContain(`configs/../sync.config.yaml:${p.line}:${p.column}: ${p.path}: ${p.message}`);
      expect(err.message).toContain(formatProblem(p));
    }
    expect(err.message).toContain(
      `configs/../sync.config.yaml:${at(text, 'clud').line}:${at(text, 'clud').column}: tables[2].timestamps.clud: "clud" is not one of the databases (desktop, cloud)\n    hint: did you mean "cloud"?`,
    );
  });

  it('shape problems (schema) and semantic rules are reported together', () => {
    const mixed = withTables(yaml`
      - name: a
        primary_key: id
        after: b
        lookback: 5
      - name: b
        primary_key: [id]
        after: [a]
        origin: false
    `).replace('to: cloud', 'to: desktop');
    const err = configError(mixed);
    expect(err.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'forward.to: forward.from and forward.to must be different databases',
      'tables[0].primary_key: expected array',
      'tables[0].after: expected array',
      'tables[0].lookback: expected string',
      'tables[1].direction: table "b" syncs both ways but has no origin rule',
    ]);
  });

  it('a problem is reported once, not once per rule that notices it', () => {
    const err = configError(
      withTables(yaml`
        - name: a
          primary_key: []
          after: [a]
      `),
    );
    expect(err.problems.map((p) => p.path)).toEqual(['tables[0].primary_key', 'tables[0].after[0]']);
  });
});
