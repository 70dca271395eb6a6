import { describe, expect, it } from 'vitest';
import { HEADER, at, onlyProblem, problemAt, problemsOf, resolve, withTables, yaml } from './helpers.js';

describe('the helpers locate text 1-based', () => {
  it('line 1 column 1 is the first character', () => {
    expect(at('version: 1\n', 'version')).toEqual({ line: 1, column: 1 });
    expect(at('a: 1\n  bb: 2\n', 'bb: 2', '2')).toEqual({ line: 2, column: 7 });
  });
});

describe('table names', () => {
  it('a table name used twice is an error at the second use, pointing at the first', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [org_id]
      - name: climaster
        primary_key: [client_id]
      - name: orgmaster # again
        primary_key: [org_id]
    `);
    const p = problemAt(problemsOf(text), 'tables[2].name', text, 'orgmaster # again', 'orgmaster');
    expect(p.message).toBe('table name "orgmaster" is used twice');
    expect(p.hint).toContain(`tables[0] at line ${at(text, '- name: orgmaster\n').line}`);
    expect(p.hint).toMatch(/unique/);
    expect(p.file).toBe('sync.config.yaml');
  });

  it('a table without a name is an error at the table', () => {
    const text = withTables(yaml`
      - primary_key: [org_id]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'primary_key: [org_id]'));
    expect(p.message).toBe('missing key "name"');
  });
});

describe('after', () => {
  it('an `after` naming no table in the file is an error at that entry with a did-you-mean', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [org_id]
      - name: climaster
        primary_key: [client_id]
        after: [orgmastr]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1].after[0]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'orgmastr]', 'orgmastr'));
    expect(p.message).toBe('"orgmastr" is not a table in this file');
    expect(p.hint).toBe('did you mean "orgmaster"?');
  });

  it('an `after` far from any table name explains what after lists', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [org_id]
        after: [invoices]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].after[0]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'invoices'));
    expect(p.hint).toMatch(/names of other tables in this file/);
  });

  it('an `after` cycle a → b → a is one problem that shows the cycle', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        after: [b]
      - name: b
        primary_key: [id]
        after: [a]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].after');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'after: [b]', '[b]'));
    expect(p.message).toBe('after has a cycle: a → b → a');
    expect(p.hint).toMatch(/remove one of these dependencies/);
  });

  it('a longer `after` cycle is one problem that names every table on it, in order', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [id]
      - name: c
        primary_key: [id]
        after: [orgmaster, e]
      - name: d
        primary_key: [id]
        after: [c]
      - name: e
        primary_key: [id]
        after: [d]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1].after');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '[orgmaster, e]'));
    expect(p.message).toBe('after has a cycle: c → e → d → c');
  });

  it('a table `after` itself is one problem at that entry', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [org_id]
      - name: climaster
        primary_key: [client_id]
        after: [orgmaster, climaster]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1].after[1]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, ', climaster]', 'climaster'));
    expect(p.message).toBe('table "climaster" cannot run after itself');
    expect(p.hint).toMatch(/remove it from after/);
  });
});

describe('origin rule', () => {
  const noDefaults = (tables: string): string => withTables(tables).replace(/^defaults:\n.*\n/m, '');

  it('a table synced `both` ways without an origin rule is an error at its direction', () => {
    const text = noDefaults(yaml`
      - name: orgmaster
        primary_key: [org_id]
        direction: forward
      - name: climaster
        primary_key: [client_id]
        direction: both
    `);
    expect(text).not.toContain('origin');
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1].direction');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'direction: both', 'both'));
    expect(p.message).toBe('table "climaster" syncs both ways but has no origin rule');
    expect(p.hint).toMatch(/origin: \{ column: .*, forward: .*, reverse: .* \}/);
  });

  it('`origin: false` on a `both` table removes the default rule and is an error', () => {
    const text = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
        direction: both
        origin: false
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].direction');
    expect(p.message).toMatch(/syncs both ways but has no origin rule/);
  });

  it('an origin rule on the table itself satisfies a `both` table', () => {
    const text = noDefaults(yaml`
      - name: climaster
        primary_key: [client_id]
        direction: both
        origin: { column: src, forward: D, reverse: M }
    `);
    expect(text).not.toContain('defaults');
    expect(resolve(text).tables[0]?.origin).toEqual({ column: 'src', forward: 'D', reverse: 'M' });
  });

  it('an origin rule with the same marker both ways is an error at origin.reverse', () => {
    const text = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
        origin: { column: src, forward: D, reverse: D }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].origin.reverse');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'reverse: D }', 'D'));
    expect(p.message).toMatch(/must differ/);
  });
});

describe('primary_key', () => {
  it('an empty primary_key is an error at that key', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: []
        direction: forward
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].primary_key');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'primary_key: []', '[]'));
    expect(p.message).toBe('must not be empty');
  });

  it('a missing primary_key is an error at the table, saying what to add', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: [org_id]
      - name: climaster
        direction: forward
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'name: climaster'));
    expect(p.message).toBe('table "climaster" has no primary_key');
    expect(p.hint).toMatch(/primary_key: \[/);
  });

  it('a primary_key that is not a list is an error at that key', () => {
    const text = withTables(yaml`
      - name: orgmaster
        primary_key: org_id
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].primary_key');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'primary_key: org_id', 'org_id'));
    expect(p.message).toBe('expected array');
  });

  it('a primary key column missing from an explicit columns list is an error at that key', () => {
    const text = withTables(yaml`
      - name: reminder
        primary_key: [rem_id]
        columns: [remdate]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].primary_key[0]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '[rem_id]', 'rem_id'));
    expect(p.message).toMatch(/"rem_id" is not in the table's columns list/);
  });
});

describe('keys naming databases', () => {
  it('a timestamps key naming an undeclared database is an error at that key with a did-you-mean', () => {
    const text = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
        timestamps:
          clud: [updated_at]
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].timestamps.clud');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'clud: [updated_at]', 'clud'));
    expect(p.message).toBe('"clud" is not one of the databases (desktop, cloud)');
    expect(p.hint).toBe('did you mean "cloud"?');
  });

  it('timestamps: { desktop: xmin } reads the desktop by row xmin (no cursor columns); any other word is an error there', () => {
    const text = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
        timestamps: { desktop: xmin, cloud: [updated_at] }
    `);
    const table = resolve(text).tables[0];
    expect(table?.xmin).toEqual(['desktop']);
    expect(table?.timestamps).toEqual({ desktop: [], cloud: ['updated_at'] });
    const typo = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
        timestamps: { desktop: xmn }
    `);
    expect(problemsOf(typo).map((p) => p.path)).toContain('tables[0].timestamps.desktop');
  });

  it('a timestamps key in defaults naming an undeclared database is an error there', () => {
    const text = withTables(yaml`
      - name: climaster
        primary_key: [client_id]
    `).replace('defaults:\n', 'defaults:\n  timestamps: { mobile: [updated_at] }\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.timestamps.mobile');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'mobile'));
    expect(p.message).toBe('"mobile" is not one of the databases (desktop, cloud)');
    expect(p.hint).toBe('timestamps is keyed by database name');
  });

  it('a per-database block naming an undeclared database is an unknown key with a did-you-mean', () => {
    const text = withTables(yaml`
      - name: reminder
        primary_key: [rem_id]
        dekstop: { table: mbreminder }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].dekstop');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'dekstop'));
    expect(p.message).toBe('unknown key "dekstop"');
    expect(p.hint).toBe('did you mean "desktop"?');
  });

  it('a per-database block in defaults naming an undeclared database is an unknown key', () => {
    const text = withTables(yaml`
      - name: reminder
        primary_key: [rem_id]
    `).replace('defaults:\n', 'defaults:\n  phone: { table: x }\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.phone');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'phone'));
    expect(p.message).toBe('unknown key "phone"');
    expect(p.hint).toMatch(/a block named after a database \(desktop, cloud\)/);
  });

  it('a column mapping naming an undeclared database is an error at that key', () => {
    const text = withTables(yaml`
      - name: reminder
        primary_key: [rem_id]
        columns:
          - rem_id
          - { desktop: remdate, clod: reminder_date }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].columns[1].clod');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'clod'));
    expect(p.message).toBe('"clod" is not one of the databases (desktop, cloud)');
    expect(p.hint).toBe('did you mean "cloud"?');
  });

  it('a column mapping that names only one database is an error at the mapping', () => {
    const text = withTables(yaml`
      - name: reminder
        primary_key: [rem_id]
        columns:
          - rem_id
          - { desktop: remdate }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].columns[1]');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '{ desktop: remdate }'));
    expect(p.message).toMatch(/mapping of the two database names/);
    expect(p.hint).toMatch(/desktop: .*cloud: /);
  });
});

describe('durations', () => {
  it('a lookback in defaults that does not parse is an error at its value', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('defaults:\n', 'defaults:\n  lookback: five seconds\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.lookback');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'five seconds'));
    expect(p.message).toBe('not a duration');
    expect(p.hint).toMatch(/0s, 500ms, 5s, 2m, 1h/);
  });

  it('a lookback in a table that does not parse is an error at its value', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
      - name: b
        primary_key: [id]
        lookback: 1y
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[1].lookback');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '1y'));
    expect(p.message).toBe('not a duration');
  });

  it.each(['-5s', '5', '5 s', 's', '5sec', '1h30'])('lookback %j is not a duration', (value) => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        lookback: "${value}"
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].lookback');
    expect({ line: p.line, column: p.column }).toEqual(at(text, `"${value}"`));
  });

  it('a bare number is not a duration (a unit is required)', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        lookback: 5
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].lookback');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'lookback: 5', '5'));
    expect(p.message).toBe('expected string');
  });
});

describe('unknown keys', () => {
  it('an unknown key at the top level is an error naming its line, column and what is allowed', () => {
    const text = `${withTables(yaml`
      - name: a
        primary_key: [id]
    `)}colour: blue\n`;
    const p = onlyProblem(text);
    expect(p.path).toBe('colour');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'colour'));
    expect({ line: p.line, column: p.column }).toEqual({ line: text.split('\n').length - 1, column: 1 });
    expect(p.message).toBe('unknown key "colour"');
    expect(p.hint).toBe('allowed here: version, databases, forward, state, defaults, tables');
  });

  it('a misspelt top-level key is an error with a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('tables:', 'tabels:');
    const problems = problemsOf(text);
    const p = problemAt(problems, 'tabels', text, 'tabels');
    expect(p.hint).toBe('did you mean "tables"?');
    expect(problems.map((q) => q.message)).toContain('missing key "tables"');
  });

  it('an unknown key in a database is an error naming its line, column and a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('    url: postgres://postgres@db.example.com', '    sll: require\n    url: postgres://postgres@db.example.com');
    const p = onlyProblem(text);
    expect(p.path).toBe('databases.cloud.sll');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'sll'));
    expect({ line: p.line, column: p.column }).toEqual({ line: 6, column: 5 });
    expect(p.message).toBe('unknown key "sll"');
    expect(p.hint).toBe('did you mean "ssl"?');
  });

  it('an unknown key in defaults is an error naming its line, column and a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('defaults:\n', 'defaults:\n  lookbak: 10s\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.lookbak');
    expect({ line: p.line, column: p.column }).toEqual({ line: 9, column: 3 });
    expect(p.hint).toBe('did you mean "lookback"?');
  });

  it('a table name under defaults is an error: it belongs on the table', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('defaults:\n', 'defaults:\n  name: x\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.name');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '  name: x', 'name'));
    expect(p.hint).toMatch(/belongs on the table/);
  });

  it('an unknown key in a table is an error naming its line, column and a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        directon: forward
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].directon');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'directon'));
    expect(p.message).toBe('unknown key "directon"');
    expect(p.hint).toBe('did you mean "direction"?');
  });

  it('an unknown key in a table with no close match lists what a table takes', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        batch_size: 100
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].batch_size');
    expect(p.hint).toMatch(/a table takes name, primary_key, direction, after, timestamps, origin, lookback, lock_timeout, statement_timeout, columns/);
    expect(p.hint).toMatch(/\(desktop, cloud\)/);
  });

  it('an unknown key in an origin rule is an error naming its line, column and what is allowed', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        origin: { column: source, forward: D, reverse: M, owner: X }
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].origin.owner');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'owner'));
    expect(p.message).toBe('unknown key "owner"');
    expect(p.hint).toBe('allowed here: column, forward, reverse');
  });

  it('an unknown key in the default origin rule is an error with a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('{ column: source, forward: D, reverse: M }', '{ column: source, forward: D, reverse: M, colum: x }');
    const p = onlyProblem(text);
    expect(p.path).toBe('defaults.origin.colum');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'colum:'));
    expect(p.hint).toBe('did you mean "column"?');
  });

  it('an unknown key in a per-database block, state, forward or a write block is an error with a likely fix', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        desktop: { tabel: mbreminder }
        reverse: { wirte: insert-only }
    `)
      .replace('forward: { from: desktop, to: cloud }', 'forward: { from: desktop, to: cloud, form: x }\nstate: { shema: sync }');
    const problems = problemsOf(text);
    expect(problems.map((p) => p.path)).toEqual(['forward.form', 'state.shema', 'tables[0].desktop.tabel', 'tables[0].reverse.wirte']);
    expect(problemAt(problems, 'forward.form', text, 'form:', 'form').hint).toBe('did you mean "from"?');
    expect(problemAt(problems, 'state.shema', text, 'shema').hint).toBe('did you mean "schema"?');
    expect(problemAt(problems, 'tables[0].desktop.tabel', text, 'tabel').hint).toBe('did you mean "table"?');
    expect(problemAt(problems, 'tables[0].reverse.wirte', text, 'wirte').hint).toBe('did you mean "write"?');
  });
});

describe('enumerated values', () => {
  it.each([
    ['direction', 'direction: sideways', 'sideways', 'tables[0].direction', 'expected one of: forward, reverse, both'],
    ['deletes', 'deletes: remove', 'remove', 'tables[0].deletes', 'expected one of: keep, mirror'],
    ['forward write', 'forward: { write: overwrite }', 'overwrite', 'tables[0].forward.write', 'expected one of: upsert, insert-only'],
    ['reverse write', 'reverse: { write: insert_only }', 'insert_only', 'tables[0].reverse.write', 'expected one of: upsert, insert-only'],
  ])('a wrong %s value is an error at the value listing the allowed ones', (_what, line, value, path, message) => {
    const text = withTables(`- name: a\n  primary_key: [id]\n  ${line}\n`);
    const p = onlyProblem(text);
    expect(p.path).toBe(path);
    expect({ line: p.line, column: p.column }).toEqual(at(text, line, value));
    expect(p.message).toBe(message);
  });

  it('a wrong ssl value is an error at the value listing the allowed ones', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
    `).replace('    url: postgres://postgres@db.example.com:5432/postgres\n', '    url: postgres://postgres@db.example.com:5432/postgres\n    ssl: verify\n');
    const p = onlyProblem(text);
    expect(p.path).toBe('databases.cloud.ssl');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'ssl: verify', 'verify'));
    expect(p.message).toBe('expected one of: disable, require, verify-full');
  });

  it('max_delete_fraction must be a fraction between 0 and 1', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        max_delete_fraction: 10
    `);
    const p = onlyProblem(text);
    expect(p.path).toBe('tables[0].max_delete_fraction');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '10'));
    expect(p.message).toMatch(/<= 1/);
  });
});

describe('databases and forward', () => {
  const tables = yaml`
    tables:
      - name: a
        primary_key: [id]
        direction: forward
  `;

  it('three databases is an error: exactly two are required', () => {
    const text = yaml`
      version: 1
      databases:
        desktop: { url: postgres://localhost/a }
        cloud: { url: postgres://localhost/b }
        archive: { url: postgres://localhost/c }
      forward: { from: desktop, to: cloud }
    ` + tables;
    const p = onlyProblem(text);
    expect(p.path).toBe('databases');
    expect({ line: p.line, column: p.column }).toEqual({ line: 3, column: 3 });
    expect(p.message).toBe('exactly two databases are required');
    expect(p.hint).toMatch(/declare two databases/);
  });

  it('one database is an error: exactly two are required', () => {
    const text = yaml`
      version: 1
      databases:
        desktop: { url: postgres://localhost/a }
      forward: { from: desktop, to: desktop }
    ` + tables;
    const problems = problemsOf(text);
    const p = problemAt(problems, 'databases', text, 'desktop: { url');
    expect(p.message).toBe('exactly two databases are required');
  });

  it('forward.from naming an unknown database is an error at the value with a did-you-mean', () => {
    const text = HEADER.replace('from: desktop', 'from: dekstop') + tables;
    const p = onlyProblem(text);
    expect(p.path).toBe('forward.from');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'dekstop'));
    expect(p.message).toBe('"dekstop" is not one of the databases (desktop, cloud)');
    expect(p.hint).toBe('did you mean "desktop"?');
  });

  it('forward.to naming an unknown database is an error at the value listing the databases', () => {
    const text = HEADER.replace('to: cloud', 'to: supabase') + tables;
    const p = onlyProblem(text);
    expect(p.path).toBe('forward.to');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'supabase'));
    expect(p.message).toBe('"supabase" is not one of the databases (desktop, cloud)');
  });

  it('forward from and to the same database is an error', () => {
    const text = HEADER.replace('to: cloud', 'to: desktop') + tables;
    const p = onlyProblem(text);
    expect(p.path).toBe('forward.to');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'to: desktop', 'desktop'));
    expect(p.message).toMatch(/must be different databases/);
  });

  it('a missing forward is an error at the top of the file', () => {
    const text = HEADER.replace('forward: { from: desktop, to: cloud }\n', '') + tables;
    const p = onlyProblem(text);
    expect(p).toMatchObject({ path: '', line: 1, column: 1, message: 'missing key "forward"' });
  });

  it('an empty tables list is an error', () => {
    const text = `${HEADER}tables: []\n`;
    const p = onlyProblem(text);
    expect(p.path).toBe('tables');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '[]'));
    expect(p.message).toBe('must not be empty');
  });
});

describe('state schema', () => {
  it('state in the public schema is an error at state.schema (SPEC §2.8: never in public)', () => {
    const text = `${HEADER}state: { schema: public }\ntables:\n  - { name: a, primary_key: [id] }\n`;
    const p = onlyProblem(text);
    expect(p.path).toBe('state.schema');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'public'));
    expect(p.message).toMatch(/must not live in the public schema/);
    expect(p.hint).toMatch(/schema: bisync/);
  });

  it('an empty state schema is an error', () => {
    const text = `${HEADER}state: { schema: "" }\ntables:\n  - { name: a, primary_key: [id] }\n`;
    const p = onlyProblem(text);
    expect(p.path).toBe('state.schema');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '""'));
  });
});

describe('version', () => {
  it('version other than 1 is an error at the value saying which version this bisync reads', () => {
    const text = HEADER.replace('version: 1', 'version: 2') + 'tables:\n  - { name: a, primary_key: [id] }\n';
    const p = onlyProblem(text);
    expect(p).toMatchObject({ path: 'version', line: 1, column: 10, message: 'expected 1' });
    expect(p.hint).toBe('this bisync reads version: 1');
  });

  it('version written as a string is an error', () => {
    const text = HEADER.replace('version: 1', 'version: "1"') + 'tables:\n  - { name: a, primary_key: [id] }\n';
    const p = onlyProblem(text);
    expect(p).toMatchObject({ path: 'version', line: 1, column: 10 });
  });

  it('a missing version is an error asking for it', () => {
    const text = HEADER.replace('version: 1\n', '') + 'tables:\n  - { name: a, primary_key: [id] }\n';
    const p = onlyProblem(text);
    expect(p).toMatchObject({ path: '', line: 1, column: 1, message: 'missing key "version"' });
    expect(p.hint).toMatch(/add version/);
  });
});

describe('YAML syntax', () => {
  it('malformed YAML is an error at the position of the syntax error', () => {
    const text = yaml`
      version: 1
      databases:
        desktop: { url: postgres://localhost/a
        cloud: { url: postgres://localhost/b }
    `;
    const p = onlyProblem(text);
    expect(p).toMatchObject({ path: '', line: 4, column: 3 });
    expect(p.message).toMatch(/^YAML syntax error: /);
    expect(p.hint).toMatch(/fix the YAML syntax/);
  });

  it('a badly indented key is an error at that line', () => {
    const text = yaml`
      version: 1
      databases:
        desktop:
          url: postgres://localhost/a
         ssl: disable
    `;
    const p = onlyProblem(text);
    expect(p.line).toBe(5);
    expect(p.column).toBe(1);
    expect(p.message).toMatch(/^YAML syntax error: .*same column/);
  });

  it('a tab used for indentation is an error, not a silently different structure', () => {
    const text = 'version: 1\ndatabases:\n\tdesktop: { url: postgres://localhost/a }\n';
    const problems = problemsOf(text);
    expect(problems.length).toBeGreaterThanOrEqual(1);
    expect(problems[0]).toMatchObject({ line: 3, path: '' });
    expect(problems[0]?.message).toMatch(/^YAML syntax error/);
  });

  it('a duplicate key is an error at the second occurrence (YAML must not silently keep the last)', () => {
    const text = withTables(yaml`
      - name: a
        primary_key: [id]
        direction: forward
        direction: reverse
    `);
    const p = onlyProblem(text);
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'direction: reverse', 'direction'));
    expect(p.message).toMatch(/keys must be unique/i);
  });

  it('a duplicate top-level key is an error at the second occurrence', () => {
    const text = `${withTables('- { name: a, primary_key: [id] }\n')}version: 1\n`;
    const p = onlyProblem(text);
    expect({ line: p.line, column: p.column }).toEqual({ line: text.split('\n').length - 1, column: 1 });
    expect(p.message).toMatch(/keys must be unique/i);
  });
});

describe('keys that would be silently ignored or ambiguous', () => {
  it('after under defaults is an error, not silently ignored', async () => {
    const { parseConfig } = await import('../../src/config/load-config.js');
    const text = `version: 1
databases:
  desktop: { url: "postgres://localhost/a" }
  cloud: { url: "postgres://localhost/b" }
forward: { from: desktop, to: cloud }
defaults:
  after: [x]
tables:
  - name: x
    primary_key: [id]
    direction: forward
`;
    let problems: { line: number; column: number; path: string; message: string }[] = [];
    try {
      parseConfig('c.yaml', text, {});
    } catch (e) {
      problems = (e as { problems: typeof problems }).problems;
    }
    expect(problems.map((p) => [p.line, p.column, p.path, p.message])).toEqual([[7, 3, 'defaults.after', 'unknown key "after" under defaults']]);
  });

  it('a database named like a table setting (e.g. "reverse") is an error', async () => {
    const { parseConfig } = await import('../../src/config/load-config.js');
    const text = `version: 1
databases:
  desktop: { url: "postgres://localhost/a" }
  reverse: { url: "postgres://localhost/b" }
forward: { from: desktop, to: reverse }
tables:
  - name: x
    primary_key: [id]
    direction: forward
`;
    let problems: { line: number; path: string; message: string }[] = [];
    try {
      parseConfig('c.yaml', text, {});
    } catch (e) {
      problems = (e as { problems: typeof problems }).problems;
    }
    expect(problems.map((p) => [p.line, p.path, p.message])).toContainEqual([4, 'databases.reverse', 'a database cannot be named "reverse": that is a table setting']);
  });
});

describe('deletes: mirror', () => {
  const base = (table: string, defaults = ''): string => `version: 1
databases:
  desktop: { url: "postgres://localhost/a" }
  cloud: { url: "postgres://localhost/b" }
forward: { from: desktop, to: cloud }
${defaults}tables:
${table}`;
  const problemsFor = async (text: string): Promise<{ path: string; message: string }[]> => {
    const { parseConfig } = await import('../../src/config/load-config.js');
    try {
      parseConfig('c.yaml', text, {});
      return [];
    } catch (e) {
      return (e as { problems: { path: string; message: string }[] }).problems;
    }
  };

  it('on a reverse-only table is an error: reverse never deletes', async () => {
    const problems = await problemsFor(base(`  - name: x\n    primary_key: [id]\n    direction: reverse\n    deletes: mirror\n    origin: { column: source, forward: D, reverse: M }\n`));
    expect(problems.map((p) => p.path)).toEqual(['tables[0].deletes']);
    expect(problems[0]?.message).toMatch(/only applies to forward/);
  });

  it('without an origin rule is an error: ownership could not be proven', async () => {
    const problems = await problemsFor(base(`  - name: x\n    primary_key: [id]\n    direction: forward\n    deletes: mirror\n`));
    expect(problems.map((p) => p.path)).toEqual(['tables[0].deletes']);
    expect(problems[0]?.message).toMatch(/needs an origin rule/);
  });

  it('on a both-ways table with an origin rule is valid', async () => {
    const problems = await problemsFor(
      base(`  - name: x\n    primary_key: [id]\n    deletes: mirror\n`, 'defaults:\n  origin: { column: source, forward: D, reverse: M }\n'),
    );
    expect(problems).toEqual([]);
  });
});
