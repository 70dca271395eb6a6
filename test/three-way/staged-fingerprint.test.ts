/**
 * The three-way merge fingerprints each staged row (md5 of the text of the row of T-typed values).
 * For a column whose staged text is already the text T prints for the value (same type on both
 * sides, a type printed alike by every server and session, or text), it hashes the staged text
 * without casting it (render-sql.ts, stagedAsPrinted). The fingerprint must stay the very value
 * T computes of the row it holds: bases recorded before stay valid, and equal rows stay equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, setDatabaseDefaults, withClient } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import type { ApplyReport } from '../../src/commands/apply.js';

// Every column type of the worked example's edits: both tables (bigint, integer, varchar(n),
// numeric(p,s), date, text, jsonb), the other types printed alike, and types that must be cast.
const KINDS_COLUMNS = `id bigint PRIMARY KEY, i integer, s smallint, v varchar(40), n numeric(12,2), nn numeric, d date, t text,
  j jsonb, u uuid, b boolean, c char(4), ts timestamptz, tl timestamp, f double precision`;
const KINDS = ['id', 'i', 's', 'v', 'n', 'nn', 'd', 't', 'j', 'u', 'b', 'c', 'ts', 'tl', 'f'];

// Awkward text: empty, quotes, commas, backslashes, parentheses, whitespace, line breaks, the word NULL, non-ASCII.
const TEXTS = ['', '"', ',', '\\', ' ', '  padded  ', '(a,b)', 'say "hi", \\o/', 'line\nbreak\ttab', 'NULL', 'Zoë 🙂', "O'Brien"];
const JSONS = ['{"a": "q\\"uote, (x)", "b": [1.50, null, true], "ü": "\\\\"}', 'null', '[]', '{}', '"str, with comma"', '1e3', '{"nested": {"k": " "}}'];
const NUMERICS = ['1.500', 'NaN', '-0.000001', '123456789012345678901234567890.5', '0', '1e3'];
const DATES = ['2024-02-29', 'infinity', '-infinity', '0044-03-15 BC', '1999-12-31'];

function row(id: number, side: 'desktop' | 'cloud'): unknown[] {
  const k = id % 97;
  if (k === 0) return [id, ...KINDS.slice(1).map(() => null)];
  return [
    id,
    -2147483648 + k,
    -32768 + k,
    TEXTS[k % TEXTS.length],
    `${k}.5`,
    NUMERICS[k % NUMERICS.length],
    DATES[k % DATES.length],
    TEXTS[(k + 3) % TEXTS.length],
    JSONS[k % JSONS.length],
    `A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A${String(k).padStart(2, '0')}`,
    k % 2 === 0,
    k % 3 === 0 ? 'ab' : 'abcd',
    `2024-03-31 01:30:0${k % 10}+05:30`,
    `2024-03-31 01:30:00.${k}`,
    side === 'desktop' ? 0.1 * k : 1e-300 * k,
  ];
}

/** T's fingerprint of the rows it holds, as the base records it (the base's on-disk format). */
const T_FINGERPRINT = `md5(convert_to(row(t.id, t.i, t.s, t.v, t.n, t.nn, t.d, t.t, t.j, t.u, t.b, t.c, timezone('UTC', t.ts), t.tl, t.f)::text, 'UTF8'))`;

/** Per base row of `table` on one database: whether its fingerprint is T's fingerprint of the row held. */
async function baseAgainstRows(url: string, table: string, fingerprint: string): Promise<{ rows: number; equal: number }> {
  return await withClient(url, async (c) => {
    await c.query(`SET DateStyle = 'ISO, MDY'`); // as in every bisync session
    const r = await c.query<{ rows: number; equal: number }>(
      `SELECT count(*)::int AS rows, count(*) FILTER (WHERE b.fingerprint = ${fingerprint})::int AS equal
         FROM bisync.base AS b JOIN public.${table} AS t ON b.key = t.id::text
        WHERE b.table_name = $1`,
      [table],
    );
    return r.rows[0] ?? { rows: 0, equal: 0 };
  });
}

/** Per step: table, direction, status, rows written, conflicts. */
const written = (report: ApplyReport): unknown[] => report.steps.map((s) => [s.table, s.direction, s.status, s.inserted + s.updated + s.deleted, s.conflicts]);
const NOTHING_WRITTEN = [
  ['kinds', 'forward', 'succeeded', 0, 0],
  ['widened', 'forward', 'succeeded', 0, 0],
  ['kinds', 'reverse', 'succeeded', 0, 0],
  ['widened', 'reverse', 'succeeded', 0, 0],
];

/** The row versions of one table's base rows on one database: any base row written changes them. */
async function baseVersions(url: string, table: string): Promise<string> {
  const [r] = await query<{ v: string }>(
    url,
    `SELECT count(*) || ':' || md5(coalesce(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid), '')) AS v FROM bisync.base WHERE table_name = $1`,
    [table],
  );
  return r?.v ?? '';
}

describe('the staged fingerprint is the one T computes of its row', () => {
  let dbs: TestDatabases & { drop(): Promise<void> };
  let config: ResolvedConfig;

  beforeAll(async () => {
    dbs = await createDatabases('staged-fp');
    // Session defaults bisync must not depend on (its sessions set DateStyle ISO; each keeps its own TimeZone).
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'Asia/Kolkata', DateStyle: 'SQL, DMY' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York', DateStyle: 'German' });
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query(`CREATE TABLE kinds (${KINDS_COLUMNS})`);
      // Same values, different types on the cloud: cast, never hashed as staged.
      await c.query('CREATE TABLE widened (id bigint PRIMARY KEY, w numeric(12,3), whole integer, v varchar(10), tx text)');
    });
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(`CREATE TABLE kinds (${KINDS_COLUMNS}, source char(1))`);
      await c.query('CREATE TABLE widened (id integer PRIMARY KEY, w numeric(12,2), whole bigint, v text, tx varchar(30), source char(1))');
    });
    const table = (name: string): string => `
  - name: ${name}
    primary_key: [id]
    direction: both
    origin: { column: source, forward: D, reverse: M }
    edits: both
    deletes: mirror
    max_delete_fraction: 1`;
    config = await testConfig(writeConfig(`${configHead()}tables:${table('kinds')}${table('widened')}\n`), dbs);
  });

  afterAll(async () => {
    await dbs.drop();
  });

  it('a staged row fingerprints as T fingerprints the row it holds, for every column type of the worked example and awkward text (existing bases stay valid)', async () => {
    const placeholders = KINDS.map((_c, i) => `$${i + 1}`).join(', ');
    await withClient(dbs.desktopUrl, async (c) => {
      for (let id = 1; id <= 120; id++) await c.query(`INSERT INTO kinds (${KINDS.join(', ')}) VALUES (${placeholders})`, row(id, 'desktop'));
      await c.query(`INSERT INTO widened SELECT g, g + 0.5, g, 'v' || g, 'tx ' || g FROM generate_series(1, 50) AS g`);
    });
    await withClient(dbs.cloudUrl, async (c) => {
      for (let id = 1001; id <= 1060; id++) await c.query(`INSERT INTO kinds (${KINDS.join(', ')}, source) VALUES (${placeholders}, 'M')`, row(id, 'cloud'));
    });
    // Forward: the desktop's rows are staged on the cloud; reverse: the cloud's rows on the desktop.
    const forward = await apply(config, { direction: 'forward' });
    expect(forward.steps.map((s) => [s.table, s.direction, s.status, s.inserted, s.conflicts])).toEqual([
      ['kinds', 'forward', 'succeeded', 120, 0],
      ['widened', 'forward', 'succeeded', 50, 0],
    ]);
    // Each base row written from a staged row holds T's fingerprint of the row T holds (the cloud's
    // copy: the rows forward wrote; the desktop's copy got the same versions after the commit).
    expect(await baseAgainstRows(dbs.cloudUrl, 'kinds', T_FINGERPRINT)).toEqual({ rows: 120, equal: 120 });
    expect(await baseAgainstRows(dbs.cloudUrl, 'widened', `md5(convert_to(row(t.id, t.w, t.whole, t.v, t.tx)::text, 'UTF8'))`)).toEqual({ rows: 50, equal: 50 });
    const reverse = await apply(config, { direction: 'reverse' });
    expect(reverse.steps.map((s) => [s.table, s.direction, s.status, s.inserted, s.conflicts])).toEqual([
      ['kinds', 'reverse', 'succeeded', 60, 0],
      ['widened', 'reverse', 'succeeded', 0, 0],
    ]);

    // A run with nothing changed writes no row; each copy of the base holds every key.
    const settle = await apply(config, { direction: 'both', mode: 'full' });
    expect(written(settle)).toEqual(NOTHING_WRITTEN);
    // Both copies of `kinds` (same types on both sides): the 120 rows forward wrote and the 60 reverse wrote.
    expect(await baseAgainstRows(dbs.desktopUrl, 'kinds', T_FINGERPRINT)).toEqual({ rows: 180, equal: 180 });
    expect(await baseAgainstRows(dbs.cloudUrl, 'kinds', T_FINGERPRINT)).toEqual({ rows: 180, equal: 180 });

    // So every staged row is found equal to T's, and equal to both copies of the base: nothing to write, not even a base row.
    const before = [await baseVersions(dbs.desktopUrl, 'kinds'), await baseVersions(dbs.cloudUrl, 'kinds')];
    const again = await apply(config, { direction: 'both', mode: 'full' });
    expect(written(again)).toEqual(NOTHING_WRITTEN);
    expect([await baseVersions(dbs.desktopUrl, 'kinds'), await baseVersions(dbs.cloudUrl, 'kinds')]).toEqual(before);
  });
});
