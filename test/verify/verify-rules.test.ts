/**
 * The pure half of `bisync verify`: the statements compiled for a table (exact text), how columns of
 * different types are compared, which outcome each row gets under the directions and origin rule,
 * and which keys a finding names. No database.
 */
import { describe, expect, it } from 'vitest';
import { DriftTally, classify, compareKeys, MAX_KEYS } from '../../src/commands/verify-drift.js';
import type { Outcome } from '../../src/commands/verify-drift.js';
import { comparedCasts } from '../../src/compiler/bucket-checksum.js';
import { compileVerify } from '../../src/compiler/compile-verify.js';
import type { VerifyTable } from '../../src/compiler/compile-verify.js';
import type { VerifyRow } from '../../src/executor/verify-reader.js';
import { DATABASES, catalog, catalogTable, column, configFrom, parseStatements, relationsOf, columnRefsOf } from '../compiler/helpers.js';

const ORIGIN = { column: 'source', forward: 'D', reverse: 'M' };

function reminderPlan(direction = 'both'): VerifyTable {
  const config = configFrom({
    version: 1,
    databases: DATABASES,
    forward: { from: 'desktop', to: 'cloud' },
    defaults: { origin: ORIGIN },
    tables: [
      {
        name: 'reminder',
        desktop: { table: 'mbreminder' },
        primary_key: ['rem_id'],
        direction,
        columns: ['rem_id', { desktop: 'remdate', cloud: 'reminder_date' }, 'note', 'amount'],
      },
    ],
  });
  const catalogs = {
    desktop: catalog('desktop', {
      reminder: catalogTable('public', 'mbreminder', [column('rem_id', 'integer'), column('remdate', 'date'), column('note', 'character varying(40)'), column('amount', 'numeric(10,2)')], ['rem_id']),
    }),
    cloud: catalog('cloud', {
      reminder: catalogTable(
        'public',
        'reminder',
        [column('rem_id', 'bigint'), column('reminder_date', 'date'), column('note', 'text'), column('amount', 'numeric'), column('source', 'character(1)')],
        ['rem_id'],
      ),
    }),
  };
  const table = compileVerify(config, catalogs).tables[0];
  if (table === undefined) throw new Error('no table compiled');
  return table;
}

describe('verify statements (pure)', () => {
  it('a mapped, retyped table: keys first, mapped names on each side, casts only where the types differ', () => {
    const table = reminderPlan();
    expect(table.columns).toEqual([
      { from: 'rem_id', to: 'rem_id', casts: ['bigint'] },
      { from: 'remdate', to: 'reminder_date', casts: [] },
      { from: 'note', to: 'note', casts: [] },
      { from: 'amount', to: 'amount', casts: ['numeric(10,2)', 'numeric'] },
    ]);
    expect(table.to.buckets.sql).toBe(`-- cloud: rows and a checksum per bucket of keys. A key's bucket is the first 16 bits of the md5
-- of its text as UTF-8 (the same bytes in any database encoding); the checksum is the sum of the first
-- 64 bits of each row's md5, so row order does not matter. Columns whose types differ between the sides are cast to the type they are compared in.
SELECT ('x' || left(r.key_hash, 4))::bit(16)::int AS bucket,
       count(*)::bigint AS rows,
       sum(('x' || left(r.row_hash, 16))::bit(64)::bigint)::text AS checksum
  FROM (SELECT md5(convert_to(ROW(t."rem_id"::bigint::text)::text, 'UTF8')) AS key_hash,
               md5(convert_to(ROW(t."rem_id"::bigint::text,
                       t."reminder_date",
                       t."note",
                       t."amount"::numeric(10,2)::numeric::text)::text, 'UTF8')) AS row_hash
          FROM "public"."reminder" AS t) AS r
 GROUP BY 1
 ORDER BY 1`);
    expect(table.from.openRows.sql).toBe(`-- desktop: key hash, key and row hash of the rows in the buckets whose checksums differ (the same
-- expressions as bucket-checksums), in key-hash order, through a cursor.
DECLARE "bisync_verify" NO SCROLL CURSOR FOR
SELECT r.key_hash, r.key, r.row_hash
  FROM (SELECT md5(convert_to(ROW(t."rem_id"::bigint::text)::text, 'UTF8')) AS key_hash,
               ARRAY[t."rem_id"::bigint::text] AS key,
               md5(convert_to(ROW(t."rem_id"::bigint::text,
                       t."remdate",
                       t."note",
                       t."amount"::numeric(10,2)::numeric::text)::text, 'UTF8')) AS row_hash
          FROM "public"."mbreminder" AS t) AS r
 WHERE ('x' || left(r.key_hash, 4))::bit(16)::int IN (SELECT unnest($1::int[]))
 ORDER BY r.key_hash COLLATE "C"`);
    expect(table.from.openRows.params).toEqual([{ name: 'differing buckets', value: null, runtime: true }]);
    expect(table.to.openRows.sql).toMatch(/t\."source"::text AS origin/);
    expect(table.from.begin.sql).toMatch(/^BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY$/m);
  });

  it('every verify statement is one statement that only reads (parsed by PostgreSQL)', () => {
    const table = reminderPlan();
    for (const side of [table.from, table.to]) {
      for (const s of [side.begin, side.settings, side.buckets, side.openRows, side.fetchRows, side.commit]) {
        const parsed = parseStatements(s.sql);
        expect(parsed, s.kind).toHaveLength(1);
        const type = Object.keys(parsed[0] ?? {})[0];
        expect(['TransactionStmt', 'SelectStmt', 'DeclareCursorStmt', 'FetchStmt'], s.kind).toContain(type);
      }
    }
    expect(relationsOf(parseStatements(table.from.buckets.sql))).toEqual([{ schemaname: 'public', relname: 'mbreminder' }]);
    expect(columnRefsOf(parseStatements(table.to.buckets.sql))).toContain('reminder_date');
  });

  it('a type that differs compares through both types; strings, enums and identical types by their own text', () => {
    const c = column;
    expect(comparedCasts(c('a', 'integer'), c('a', 'integer'))).toEqual([]);
    expect(comparedCasts(c('a', 'text'), c('a', 'character varying(40)'))).toEqual([]);
    expect(comparedCasts(c('a', 'text'), c('a', 'character(4)'))).toEqual(['bpchar']);
    expect(comparedCasts(c('a', 'character(4)'), c('a', 'text'))).toEqual(['bpchar']);
    expect(comparedCasts(c('a', 'bigint'), c('a', 'integer'))).toEqual(['bigint']);
    expect(comparedCasts(c('a', 'smallint'), c('a', 'bigint'))).toEqual(['bigint']);
    expect(comparedCasts(c('a', 'numeric'), c('a', 'numeric(10,2)'))).toEqual(['numeric(10,2)', 'numeric']);
    expect(comparedCasts(c('a', 'timestamp with time zone'), c('a', 'timestamp without time zone'))).toEqual([
      'timestamp without time zone',
      'timestamp with time zone',
    ]);
    expect(comparedCasts(c('a', 'job_status', { category: 'E' }), c('a', 'text'))).toEqual([]);
  });

  it('--table with an unknown name is refused before anything runs', () => {
    expect(() => compileVerify(configFrom({ version: 1, databases: DATABASES, forward: { from: 'desktop', to: 'cloud' }, tables: [{ name: 'a', primary_key: ['id'], direction: 'forward' }] }), {}, ['b'])).toThrow(
      /--table names "b"/,
    );
  });
});

const row = (key: string, rowHash: string, origin?: string | null): VerifyRow => ({ keyHash: key, key: [key], rowHash, ...(origin === undefined ? {} : { origin }) });

describe('verify rules: what a key found on one or both sides means', () => {
  const cases: [string, string, VerifyRow | undefined, VerifyRow | undefined, Outcome][] = [
    ['both', 'desktop only', row('1', 'a'), undefined, 'missing-on-to'],
    ['both', 'cloud only, owned by the desktop', undefined, row('1', 'a', 'D'), 'extra-on-to'],
    ['both', 'cloud only, NULL origin (unmarked)', undefined, row('1', 'a', null), 'unmarked-on-to'],
    ['forward', 'cloud only, NULL origin (unmarked)', undefined, row('1', 'a', null), 'unmarked-on-to'],
    ['both', 'cloud only, owned by the phone', undefined, row('1', 'a', 'M'), 'missing-on-from'],
    ['both', 'cloud only, another origin value', undefined, row('1', 'a', 'X'), 'not-synced'],
    ['both', 'equal, owned by the phone', row('1', 'a'), row('1', 'a', 'M'), 'in-step'],
    ['both', 'different, owned by the desktop', row('1', 'a'), row('1', 'b', 'D'), 'differs'],
    ['both', 'different, owned by the phone', row('1', 'a'), row('1', 'b', 'M'), 'protected-differs'],
    ['forward', 'cloud only, owned by the phone', undefined, row('1', 'a', 'M'), 'not-synced'],
    ['forward', 'different, owned by the phone', row('1', 'a'), row('1', 'b', 'M'), 'protected-differs'],
    ['reverse', 'desktop only', row('1', 'a'), undefined, 'not-synced'],
    ['reverse', 'cloud only, owned by the desktop', undefined, row('1', 'a', 'D'), 'not-synced'],
    ['reverse', 'cloud only, owned by the phone', undefined, row('1', 'a', 'M'), 'missing-on-from'],
    ['reverse', 'different, owned by the phone', row('1', 'a'), row('1', 'b', 'M'), 'differs'],
    ['reverse', 'different, owned by the desktop', row('1', 'a'), row('1', 'b', 'D'), 'not-synced'],
  ];
  for (const [direction, what, from, to, outcome] of cases) {
    it(`${direction}: ${what} → ${outcome}`, () => {
      expect(classify(reminderPlan(direction), from, to)).toBe(outcome);
    });
  }

  it('without an origin rule every cloud row belongs to the direction the table syncs', () => {
    const noOrigin = { ...reminderPlan('forward'), origin: null };
    expect(classify(noOrigin, undefined, row('1', 'a'))).toBe('extra-on-to');
    expect(classify({ ...noOrigin, directions: ['reverse'] }, undefined, row('1', 'a'))).toBe('missing-on-from');
    expect(classify({ ...noOrigin, directions: ['reverse'] }, row('1', 'a'), row('1', 'b'))).toBe('differs');
  });
});

describe('verify findings name keys', () => {
  it('integers by value, NULL first, text in natural order', () => {
    const keys: (string | null)[][] = [['10'], ['9'], [null], ['-3'], ['100000000000000000001'], ['100000000000000000000']];
    expect(keys.sort(compareKeys)).toEqual([[null], ['-3'], ['9'], ['10'], ['100000000000000000000'], ['100000000000000000001']]);
    expect([['b', '2'], ['a', '10'], ['a', '9']].sort(compareKeys)).toEqual([['a', '9'], ['a', '10'], ['b', '2']]);
  });

  it(`a finding keeps the first ${MAX_KEYS} keys in key order, whatever order rows arrive in, and counts them all`, () => {
    const tally = new DriftTally(reminderPlan());
    const ids = Array.from({ length: 250 }, (_, i) => (i * 97) % 250);
    for (const id of ids) tally.add('missing-on-to', row(String(id), 'x'));
    const missing = tally.findings.find((f) => f.kind === 'missing' && f.database === 'cloud');
    expect(missing?.count).toBe(250);
    expect(missing?.keys).toEqual(Array.from({ length: MAX_KEYS }, (_, i) => ({ rem_id: String(i) })));
    expect(tally.drifted).toBe(250);
  });
});
