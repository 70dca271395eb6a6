import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SAMPLE_TABLES } from '../fixtures/sample-dataset.js';
import { envFor, loadSample, query, runCli } from '../harness/bisync.js';
import type { CliResult } from '../harness/bisync.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

interface StarterTable {
  name: string;
  primary_key: string[];
  direction: string;
  after?: string[];
  timestamps?: Record<string, string[] | 'xmin'>;
  origin?: false | { column: string; forward: string; reverse: string };
  columns?: string[];
}
interface StarterFile {
  version: number;
  databases: Record<string, { url: string; ssl?: string }>;
  forward: { from: string; to: string };
  state: { schema: string };
  defaults: { origin?: { column: string; forward: string; reverse: string }; lookback: string; timestamps?: Record<string, string[] | 'xmin'> };
  tables: StarterTable[];
}

/** A fresh directory with no config in it: `init` must not need one. */
const emptyDir = (): string => mkdtempSync(join(tmpdir(), 'bisync-init-'));

/** The environment of a user who has no config and no database variables set. */
function bareEnv(): NodeJS.ProcessEnv {
  const { BISYNC_CONFIG: _c, DESKTOP_DATABASE_URL: _d, CLOUD_DATABASE_URL: _u, ...rest } = process.env;
  return rest;
}

async function init(urls: TestDatabases, dir: string, extra: readonly string[] = []): Promise<CliResult> {
  return await runCli(['init', '--desktop', urls.desktopUrl, '--cloud', urls.cloudUrl, ...extra], bareEnv(), dir);
}

/** `init` into a fresh directory; returns the file's path and text. */
async function initFile(dbs: TestDatabases): Promise<{ file: string; text: string }> {
  const dir = emptyDir();
  const result = await init(dbs, dir);
  expect(result.code, result.stderr).toBe(0);
  const file = join(dir, 'sync.config.yaml');
  return { file, text: readFileSync(file, 'utf8') };
}

const tableOf = (config: StarterFile, name: string): StarterTable => {
  const table = config.tables.find((t) => t.name === name);
  if (table === undefined) throw new Error(`no table ${name} in the starter config`);
  return table;
};

/** The comment lines written just above a table's `- name:` line. */
function commentAbove(text: string, name: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trimEnd() === `  - name: ${name}`);
  expect(at).toBeGreaterThan(0);
  let start = at;
  while (start > 0 && (lines[start - 1] ?? '').trimStart().startsWith('#')) start--;
  return lines.slice(start, at).map((l) => l.trim().replace(/^# ?/, '')).join(' ');
}

describe('bisync init on the sample dataset', () => {
  const dbs = useFreshDatabases('init');
  let first: { file: string; text: string };

  beforeAll(async () => {
    await loadSample(dbs, 0.01);
    first = await initFile(dbs);
  });

  it('writes sync.config.yaml in the current directory without needing a config, and the file passes validate --live', async () => {
    // The $schema line points at a file that exists for the user: the installed bisync's schema, relative to the config.
    const schemaRef = /^# yaml-language-server: \$schema=(\S+)\n/.exec(first.text)?.[1] ?? '';
    expect(existsSync(join(dirname(first.file), schemaRef))).toBe(true);
    expect(readFileSync(join(dirname(first.file), schemaRef), 'utf8')).toContain('"$schema"');
    const result = await runCli(['validate', '--live', '--config', first.file], envFor(dbs));
    // Only warnings (the sample's origin column allows NULL), no problems.
    expect(result.stderr).not.toMatch(/problems? against the live databases/);
    expect(result.stderr.split('\n').filter((l) => l.includes(': table "') && !l.includes('origin column "source" allows NULL') && !l.includes('no trigger sets cursor column'))).toEqual([]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/OK — 14 tables, forward desktop → cloud/);
    expect(result.stdout).toMatch(/every table, column, key, cursor and origin column matches the config/);
  });

  it('the written config syncs: apply exits 0 and the desktop rows arrive on the cloud, stamped D', async () => {
    const result = await runCli(['apply', '--config', first.file], envFor(dbs));
    expect(result.code).toBe(0);
    for (const table of ['orgmaster', 'climaster', 'jobshead', 'workdiary']) {
      const [desktop] = await query<{ n: number }>(dbs.desktopUrl, `SELECT count(*)::int AS n FROM ${table}`);
      const [cloud] = await query<{ n: number; d: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n, count(*) FILTER (WHERE source = 'D')::int AS d FROM ${table}`);
      expect(desktop?.n).toBeGreaterThan(0);
      expect(cloud).toEqual({ n: desktop?.n, d: desktop?.n });
    }
  });

  it('writes the URLs as ${DESKTOP_DATABASE_URL} and ${CLOUD_DATABASE_URL}, never the given URL or its password', () => {
    const config = parse(first.text) as StarterFile;
    expect(config.databases).toEqual({ desktop: { url: '${DESKTOP_DATABASE_URL}' }, cloud: { url: '${CLOUD_DATABASE_URL}' } });
    expect(first.text).toContain('url: ${DESKTOP_DATABASE_URL}');
    const password = new URL(dbs.desktopUrl).password;
    expect(password.length).toBeGreaterThan(0);
    expect(first.text).not.toContain(password);
    expect(first.text).not.toContain(new URL(dbs.desktopUrl).host);
    expect(first.text).not.toMatch(/postgres(ql)?:\/\//);
    expect(config).toMatchObject({ version: 1, forward: { from: 'desktop', to: 'cloud' }, state: { schema: 'bisync' } });
  });

  it('proposes every table both sides have with its primary key and after from its foreign keys', () => {
    const config = parse(first.text) as StarterFile;
    const expected = SAMPLE_TABLES.filter((t) => t.name !== 'reminder');
    expect(config.tables.map((t) => t.name).sort()).toEqual(expected.map((t) => t.name).sort());
    for (const sample of expected) {
      const table = tableOf(config, sample.name);
      expect(table.primary_key, sample.name).toEqual(sample.primaryKey);
      expect([...(table.after ?? [])].sort(), sample.name).toEqual(sample.parents.filter((p) => p !== 'reminder').sort());
      expect(table.direction, sample.name).toBe('both');
    }
    // Parents come first in the file.
    const position = new Map(config.tables.map((t, i) => [t.name, i]));
    for (const t of config.tables) for (const parent of t.after ?? []) expect(position.get(parent)).toBeLessThan(position.get(t.name) ?? -1);
  });

  it('hoists the cloud cursor columns (newest first), xmin for the desktop that has none, and the source origin rule into defaults', () => {
    const config = parse(first.text) as StarterFile;
    expect(config.defaults).toEqual({
      origin: { column: 'source', forward: 'D', reverse: 'M' },
      lookback: '5s',
      timestamps: { desktop: 'xmin', cloud: ['updated_at', 'created_at'] },
    });
    expect(config.tables.every((t) => t.timestamps === undefined && t.origin === undefined)).toBe(true);
    expect(first.text).toMatch(/# GUESS: 14 of 14 cloud tables have a text column `source`/);
  });

  it('lists mbreminder and reminder, on one side each, in a comment and syncs neither; remdetail notes its unsynced parent', () => {
    expect(first.text).toMatch(/^# - only on desktop: mbreminder$/m);
    expect(first.text).toMatch(/^# - only on cloud: reminder$/m);
    expect(commentAbove(first.text, 'remdetail')).toMatch(/foreign keys reference tables this file does not sync \(desktop: mbreminder; cloud: reminder\)/);
  });

  it('refuses to overwrite an existing file without --force (exit 2, file unchanged), and replaces it with --force', async () => {
    const dir = emptyDir();
    const file = join(dir, 'mine.yaml');
    writeFileSync(file, 'my hand-written config\n');

    const refused = await init(dbs, dir, ['--out', 'mine.yaml']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/mine\.yaml already exists/);
    expect(refused.stderr).toMatch(/hint: pass --force to replace it/);
    expect(readFileSync(file, 'utf8')).toBe('my hand-written config\n');

    const forced = await init(dbs, dir, ['--out', 'mine.yaml', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/^wrote mine\.yaml: 14 tables/);
    expect(readFileSync(file, 'utf8')).toBe(first.text);
  });

  it('is deterministic and reads only the catalog: a role that may read no table gets the identical file, also once the state schema exists', async () => {
    await runCli(['apply', '--config', first.file], envFor(dbs)); // creates bisync's state schema on both sides
    const again = await initFile(dbs);
    expect(again.text).toBe(first.text);

    const role = `bisync_init_${randomBytes(4).toString('hex')}`;
    const password = `Init-${randomBytes(8).toString('hex')}`;
    const servers = [...new Set([dbs.desktopUrl, dbs.cloudUrl].map((u) => new URL(u).host))];
    const adminOf = (host: string): string => (new URL(dbs.desktopUrl).host === host ? dbs.desktopUrl : dbs.cloudUrl);
    for (const host of servers) await query(adminOf(host), `CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    try {
      const asRole = (url: string): string => {
        const u = new URL(url);
        u.username = role;
        u.password = password;
        return u.toString();
      };
      await expect(query(asRole(dbs.desktopUrl), 'SELECT count(*) FROM orgmaster')).rejects.toThrow(/permission denied/);

      const restricted = await initFile({ desktopUrl: asRole(dbs.desktopUrl), cloudUrl: asRole(dbs.cloudUrl) });
      expect(restricted.text).toBe(first.text);
      expect(restricted.text).not.toContain(password);
    } finally {
      for (const host of servers) await query(adminOf(host), `DROP ROLE ${role}`);
    }
  });

  it('an unreachable database exits 2 naming host and database, never the password, and writes no file', async () => {
    const dir = emptyDir();
    const result = await runCli(['init', '--desktop', 'postgres://bisync:hunter2hunter2@127.0.0.1:9/nowhere', '--cloud', dbs.cloudUrl], bareEnv(), dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot connect to desktop \(127\.0\.0\.1:9\/nowhere\)/);
    expect(result.stderr).toMatch(/hint: nothing listens there/);
    expect(result.stderr + result.stdout).not.toContain('hunter2hunter2');
    expect(existsSync(join(dir, 'sync.config.yaml'))).toBe(false);
  });

  it('a missing URL is a usage error (exit 2) that says how to give it', async () => {
    const result = await runCli(['init', '--desktop', dbs.desktopUrl], bareEnv(), emptyDir());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no cloud database URL\n {2}hint: pass --cloud URL or set CLOUD_DATABASE_URL/);
  });
});

// Both sides as a mobile-app schema would have them: the cloud tables carry `source`,
// `updated_at` and `created_at`, except where a test needs them to differ.
const CLOUD_EXTRAS = `source char(1), updated_at timestamptz NOT NULL DEFAULT now(), created_at timestamptz NOT NULL DEFAULT now()`;
const EDGE_DESKTOP = `
CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL, desk_note text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, label text);
CREATE TABLE dept (id int PRIMARY KEY, manager_id int);
CREATE TABLE employee (id int PRIMARY KEY, dept_id int NOT NULL REFERENCES dept);
ALTER TABLE dept ADD FOREIGN KEY (manager_id) REFERENCES employee;
CREATE TABLE codes (code text NOT NULL UNIQUE, label text);
CREATE TABLE nullable_code (code text UNIQUE, label text);
CREATE TABLE audit_log (at timestamptz, msg text);
CREATE TABLE half_key (id int PRIMARY KEY, v text);
CREATE TABLE plain (id int PRIMARY KEY, v text);
CREATE TABLE typed (id int PRIMARY KEY, amount numeric NOT NULL, memo text);
CREATE TABLE owned (id int PRIMARY KEY, v text);
CREATE TABLE "Odd ""Name"" #1" (id int PRIMARY KEY, "Val: x" text);
CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, v text);
CREATE TABLE local_only (id int PRIMARY KEY);
`;
const EDGE_CLOUD = `
CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL, mobile_note text, ${CLOUD_EXTRAS});
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, label text, ${CLOUD_EXTRAS});
CREATE TABLE dept (id int PRIMARY KEY, manager_id int, ${CLOUD_EXTRAS});
CREATE TABLE employee (id int PRIMARY KEY, dept_id int NOT NULL REFERENCES dept, ${CLOUD_EXTRAS});
ALTER TABLE dept ADD FOREIGN KEY (manager_id) REFERENCES employee;
CREATE TABLE codes (code text NOT NULL UNIQUE, label text, source char(1), modified_at timestamptz, created_at timestamptz);
CREATE TABLE nullable_code (code text UNIQUE, label text, ${CLOUD_EXTRAS});
CREATE TABLE audit_log (at timestamptz, msg text, ${CLOUD_EXTRAS});
CREATE TABLE half_key (id int NOT NULL, v text, ${CLOUD_EXTRAS});
CREATE TABLE plain (id int PRIMARY KEY, v text);
CREATE TABLE typed (id int PRIMARY KEY, amount text, memo text, ${CLOUD_EXTRAS});
CREATE TABLE owned (id int PRIMARY KEY, v text, owner_id uuid NOT NULL, ${CLOUD_EXTRAS});
CREATE TABLE "Odd ""Name"" #1" (id int PRIMARY KEY, "Val: x" text, ${CLOUD_EXTRAS});
CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, v text, ${CLOUD_EXTRAS});
CREATE TABLE cloud_only (id int PRIMARY KEY);
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY);
`;

describe('bisync init on hand-made schemas', () => {
  const dbs = useFreshDatabases('initedge');
  let file: string;
  let text: string;
  let config: StarterFile;

  beforeAll(async () => {
    await query(dbs.desktopUrl, EDGE_DESKTOP);
    await query(dbs.cloudUrl, EDGE_CLOUD);
    await query(dbs.desktopUrl, `INSERT INTO parent VALUES (1, 'p1', NULL); INSERT INTO child VALUES (1, 1, 'c1');
      INSERT INTO dept VALUES (1, NULL), (2, NULL); INSERT INTO employee VALUES (2, 2); UPDATE dept SET manager_id = 2 WHERE id = 1;
      INSERT INTO codes VALUES ('A', 'alpha'); INSERT INTO plain VALUES (1, 'x'); INSERT INTO typed VALUES (1, 9.5, 'm');
      INSERT INTO "Odd ""Name"" #1" VALUES (1, 'odd'); INSERT INTO app.items VALUES (1, 'i')`);
    ({ file, text } = await initFile(dbs));
    config = parse(text) as StarterFile;
  });

  it('the file passes validate --live, and apply syncs with it (exit 0)', async () => {
    const validate = await runCli(['validate', '--live', '--config', file], envFor(dbs));
    expect(validate.stderr).not.toMatch(/problems? against the live databases/);
    expect(validate.code).toBe(0);
    const result = await runCli(['apply', '--config', file], envFor(dbs));
    expect(result.code).toBe(0);
    expect(await query(dbs.cloudUrl, 'SELECT id, parent_id, label, source FROM child')).toEqual([{ id: 1, parent_id: 1, label: 'c1', source: 'D' }]);
    expect(await query(dbs.cloudUrl, 'SELECT id, "Val: x" AS v FROM "Odd ""Name"" #1"')).toEqual([{ id: 1, v: 'odd' }]);
  });

  it('skips a table without a key, one whose key is on one side only, and one whose only key allows NULL, saying why', () => {
    const names = config.tables.map((t) => t.name);
    expect(names).not.toContain('audit_log');
    expect(names).not.toContain('half_key');
    expect(names).not.toContain('nullable_code');
    const flat = text.replace(/\n# {3}/g, ' '); // join wrapped comment lines
    expect(flat).toMatch(/^# - audit_log: no primary key or unique constraint on the same columns on both sides \(desktop: none; cloud: none\)/m);
    expect(flat).toMatch(/^# - half_key: no primary key or unique constraint on the same columns on both sides \(desktop: primary key \(id\); cloud: none\)/m);
    expect(flat).toMatch(/^# - nullable_code: its only key shared by both sides, unique \(code\), allows NULL/m);
  });

  it('matches rows by a NOT NULL unique constraint when there is no primary key, and says so', () => {
    expect(tableOf(config, 'codes').primary_key).toEqual(['code']);
    expect(commentAbove(text, 'codes')).toMatch(/GUESS: rows are matched by \(code\): a unique constraint on desktop, a unique constraint on cloud/);
  });

  it('without an origin column on the cloud a table syncs forward only, with origin: false and a comment saying reverse needs one', () => {
    expect(config.defaults.origin).toEqual({ column: 'source', forward: 'D', reverse: 'M' });
    expect(tableOf(config, 'plain')).toMatchObject({ direction: 'forward', origin: false });
    expect(commentAbove(text, 'plain')).toMatch(/the cloud table has no origin column .* reverse needs one/);
    expect(tableOf(config, 'parent').direction).toBe('both');
  });

  it('a cloud column that is NOT NULL without a default and missing on the desktop makes the table reverse only', () => {
    expect(tableOf(config, 'owned').direction).toBe('reverse');
    expect(commentAbove(text, 'owned')).toMatch(/reverse only: cloud column owner_id is NOT NULL without a default and not synced/);
  });

  it('names columns found on one side only in a comment, and leaves a column whose types differ out of an explicit columns list', () => {
    expect(commentAbove(text, 'parent')).toMatch(/only on desktop, not synced: desk_note .*only on cloud, not synced: mobile_note/);
    expect(commentAbove(text, 'parent')).not.toMatch(/updated_at|source/);
    expect(tableOf(config, 'typed').columns).toEqual(['id', 'memo']);
    expect(commentAbove(text, 'typed')).toMatch(/amount is numeric on desktop but text on cloud: left out of columns/);
  });

  it('breaks a foreign-key cycle at the nullable reference, says so, and the row rejected on the first run arrives on the next', async () => {
    expect(tableOf(config, 'employee').after).toEqual(['dept']);
    expect(tableOf(config, 'dept').after).toBeUndefined();
    expect(commentAbove(text, 'dept')).toMatch(/GUESS: foreign keys form a cycle \(dept → employee → dept, each referencing the next\); it is broken here: dept does not wait for employee\./);
    expect(commentAbove(text, 'dept')).toMatch(/employee waits for dept, because employee\.dept_id is NOT NULL .*while dept\.manager_id allows NULL/);
    // The first apply (above) ran dept before employee, so dept 1, managed by employee 2, was rejected.
    expect(await query(dbs.cloudUrl, 'SELECT id, manager_id FROM dept ORDER BY id')).toEqual([{ id: 2, manager_id: null }]);
    const result = await runCli(['apply', '--config', file], envFor(dbs));
    expect(result.code).toBe(0);
    expect(await query(dbs.cloudUrl, 'SELECT id, manager_id FROM dept ORDER BY id')).toEqual([
      { id: 1, manager_id: 2 },
      { id: 2, manager_id: null },
    ]);
  });

  it('writes cursor columns per table when the tables differ, and does not use a created_at as the only cursor', () => {
    expect(config.defaults.timestamps).toBeUndefined();
    expect(tableOf(config, 'parent').timestamps).toEqual({ desktop: 'xmin', cloud: ['updated_at', 'created_at'] });
    expect(tableOf(config, 'codes').timestamps).toEqual({ desktop: 'xmin', cloud: ['modified_at', 'created_at'] });
    // No cursor column on either side: both sides are read by xmin (SPEC §8), never in full by default.
    expect(tableOf(config, 'plain').timestamps).toEqual({ desktop: 'xmin', cloud: 'xmin' });
  });

  it('quotes odd table and column names, and qualifies a table outside the search path', () => {
    expect(text).toContain(`- name: 'Odd "Name" #1'`);
    expect(tableOf(config, 'Odd "Name" #1').primary_key).toEqual(['id']);
    expect(tableOf(config, 'app.items')).toMatchObject({ primary_key: ['id'], direction: 'both' });
  });

  it("leaves out the platform's schemas (Supabase auth) and lists one-sided tables", () => {
    expect(text).not.toMatch(/auth\.users/);
    expect(text).toMatch(/^# Left out on cloud: the schema auth, which the hosting platform \(Supabase\) manages\.$/m);
    expect(text).toMatch(/^# - only on desktop: local_only$/m);
    expect(text).toMatch(/^# - only on cloud: cloud_only$/m);
  });
});
