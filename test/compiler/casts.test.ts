/**
 * Rows that cannot be applied don't block the table, and are never silently changed (SPEC §2.6):
 * the merge casts staged text to the target's types, and an explicit cast to varchar(n), char(n)
 * or bit(n) truncates without an error. A value that does not fit the target column must become a
 * reject, not a shortened row that later runs then consider "unchanged" forever.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compiler/compile-plan.js';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { catalog, catalogTable, column, configFrom, DATABASES, nodesOf, parseStatements, stringsOf } from './helpers.js';

const CONFIG = `version: 1
databases:
  desktop: { url: "\${DESKTOP_DATABASE_URL}" }
  cloud: { url: "\${CLOUD_DATABASE_URL}" }
forward: { from: desktop, to: cloud }
defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
  - { name: t, primary_key: [id], direction: forward }
`;

describe('a value longer than the target column is rejected, never silently truncated', () => {
  it('casts in the merge carry no length limit for strings and bit strings; other precisions stay', () => {
    const config = configFrom({
      version: 1,
      databases: DATABASES,
      forward: { from: 'desktop', to: 'cloud' },
      tables: [{ name: 't', primary_key: ['id'], direction: 'forward', origin: false }],
    });
    const columns = [
      column('id', 'integer'),
      column('v', 'character varying(5)'),
      column('c', 'character(3)'),
      column('b', 'bit(3)'),
      column('vb', 'bit varying(2)'),
      column('arr', 'character varying(4)[]'),
      column('n', 'numeric(12,2)'),
      column('ts', 'timestamp(3) with time zone'),
    ];
    const cats = { desktop: catalog('desktop', { t: catalogTable('public', 't', columns, ['id']) }), cloud: catalog('cloud', { t: catalogTable('public', 't', columns, ['id']) }) };
    const merge = compilePlan(config, cats, {}, { direction: 'forward', mode: 'auto' }).steps[0]?.statements.find((s) => s.kind === 'merge');
    const insert = nodesOf(parseStatements(merge?.sql ?? ''), 'InsertStmt')[0];
    const select = (insert?.selectStmt as { SelectStmt: { targetList: { ResTarget: { val: { TypeCast: { typeName: { names: unknown; typmods?: unknown[]; arrayBounds?: unknown[] } } } } }[] } }).SelectStmt;
    const casts = select.targetList.map(({ ResTarget: { val } }) => ({
      type: stringsOf(val.TypeCast.typeName.names).at(-1),
      typmods: val.TypeCast.typeName.typmods?.length ?? 0,
      array: val.TypeCast.typeName.arrayBounds !== undefined,
    }));
    expect(casts).toEqual([
      { type: 'int4', typmods: 0, array: false },
      { type: 'varchar', typmods: 0, array: false },
      { type: 'bpchar', typmods: 0, array: false },
      { type: 'varbit', typmods: 0, array: false },
      { type: 'varbit', typmods: 0, array: false },
      { type: 'varchar', typmods: 0, array: true },
      { type: 'numeric', typmods: 2, array: false },
      { type: 'timestamptz', typmods: 1, array: false },
    ]);
  });

  describe('end to end', () => {
    const dbs = useFreshDatabases('casts');

    beforeAll(async () => {
      await withClient(dbs.desktopUrl, async (c) => {
        await c.query('CREATE TABLE t (id int PRIMARY KEY, name varchar(20), code char(6), bits bit varying(8), fixed bit(3))');
        await c.query(`INSERT INTO t VALUES (1, 'fits', 'ab', B'1', B'101'), (2, 'far too long', 'ab', B'1', B'101'),
                                              (3, 'fits', 'abcdef', B'1', B'101'), (4, 'fits', 'ab', B'10101', B'101')`);
      });
      await withClient(dbs.cloudUrl, async (c) => {
        await c.query('CREATE TABLE t (id int PRIMARY KEY, name varchar(5), code char(3), bits bit varying(2), fixed bit(3), source text)');
      });
    });

    it('over-long values go to rejects with their error; fitting rows arrive intact; a re-run writes nothing', async () => {
      const config = await testConfig(writeConfig(CONFIG), dbs);
      const first = (await apply(config)).steps[0];
      expect(first).toMatchObject({ status: 'succeeded', read: 4, inserted: 1, rejected: 3 });
      expect(await query(dbs.cloudUrl, 'SELECT id, name, code, bits, fixed FROM t ORDER BY id')).toEqual([{ id: 1, name: 'fits', code: 'ab ', bits: '1', fixed: '101' }]);
      const rejects = await query(dbs.cloudUrl, "SELECT key->>'id' AS id, reason, error_code FROM bisync.rejects ORDER BY 1");
      expect(rejects).toEqual([
        { id: '2', reason: 'error', error_code: '22001' },
        { id: '3', reason: 'error', error_code: '22001' },
        { id: '4', reason: 'error', error_code: '22001' },
      ]);

      // The comparison still sees the fitting row as unchanged (char padding, bit strings).
      const second = (await apply(config)).steps[0];
      expect(second).toMatchObject({ status: 'succeeded', inserted: 0, updated: 0, unchanged: 1, rejected: 3 });
    });
  });
});
