/**
 * SQL safety is structural: identifiers reach SQL only through the quoting helper, values only as
 * `$n` parameters. Hostile schema, table, column, type and state-schema names are compiled, every
 * statement is parsed by the real PostgreSQL parser, and the names must come back intact, with the
 * statement's structure identical to the one compiled from harmless names. Then the same names are
 * synced end to end through `bisync apply` on real databases, which must move the rows and drop
 * nothing (after kysely's sql-injection test).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { compilePlan, stepKey } from '../../src/compiler/compile-plan.js';
import type { StateSnapshot } from '../../src/compiler/compile-plan.js';
import type { Catalog } from '../../src/compiler/catalog.js';
import type { Plan } from '../../src/compiler/plan-types.js';
import { quoteIdent } from '../../src/compiler/quote-ident.js';
import { renderSql, templateNames } from '../../src/compiler/render-sql.js';
import { wireSql } from '../../src/compiler/wire-sql.js';
import { ConfigError } from '../../src/errors.js';
import { apply, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import {
  DATABASES,
  catalog,
  catalogTable,
  column,
  columnRefsOf,
  configFrom,
  nodesOf,
  parseStatements,
  planStatements,
  relationsOf,
  renameStrings,
  statementType,
  stringsOf,
  withoutLocations,
} from './helpers.js';

/** Names that break naive SQL: quotes, statement ends, comments, `$n`, Handlebars, unicode, newlines. */
const HOSTILE = {
  stateSchema: 'bisync"; DROP SCHEMA public CASCADE; --',
  desktopSchema: 'schéma',
  desktopTable: 'tâble',
  cloudSchema: 'x; DROP TABLE y; --',
  cloudTable: 'a"b',
  key: 'Key"Col',
  mixed: 'MixedCol',
  space: 'col with space',
  drop: "x'); DROP TABLE victim; --",
  dollar: '$1 {{ident x}}',
  comment: 'a/*b*/--c',
  newline: 'line\nbreak',
  enumColumn: 'état',
  enumType: 'evil; DROP TABLE y; --',
  origin: 'Sour"ce',
  cursor1: 'upd"at',
  cursor2: 'Créé le',
  t2Desktop: 'MixedCase',
  t2CloudSchema: 'with space',
  t2CloudTable: 'tab.le',
  t2KeyDesktop: 'k"d',
  t2KeyCloud: 'k"c',
  refSchema: 'réf"; --',
  refTable: 'child); DROP TABLE y; --',
  refColumn: 'fk"id',
  refKeyColumn: 'fk k"c',
  grandSchema: 'gränd.schema',
  grandTable: 'grand"child',
  grandColumn: 'parent/*x*/',
} as const;

type Names = { readonly [K in keyof typeof HOSTILE]: string };

/** The same shape with harmless names (lower case, so an unquoted type name reads the same). */
const BENIGN: Names = Object.fromEntries(Object.keys(HOSTILE).map((k) => [k, `n_${k.toLowerCase()}`])) as unknown as Names;

/** Values from the config: they must only ever be parameters. */
const VALUES = { table1: "t1'); DROP TABLE victim; --", table2: 'two"; --', table3: "three'-- way", forwardMark: "D'; --", reverseMark: 'M"', lookback: '17s' };

/** The hostile config; the pure tests add a third table with edits: both (SPEC §7). */
function document(n: Names, threeWay = true): unknown {
  return {
    version: 1,
    databases: DATABASES,
    forward: { from: 'desktop', to: 'cloud' },
    state: { schema: n.stateSchema },
    defaults: { origin: { column: n.origin, forward: VALUES.forwardMark, reverse: VALUES.reverseMark }, lookback: VALUES.lookback },
    tables: [
      {
        name: VALUES.table1,
        desktop: { table: `${n.desktopSchema}.${n.desktopTable}` },
        cloud: { table: `${n.cloudSchema}.${n.cloudTable}` },
        primary_key: [n.key],
        direction: 'both',
        timestamps: { cloud: [n.cursor1, n.cursor2] },
        reverse: { write: 'insert-only' },
      },
      {
        name: VALUES.table2,
        cloud: { table: `${n.t2CloudSchema}.${n.t2CloudTable}` },
        desktop: { table: n.t2Desktop },
        primary_key: ['id', n.t2KeyDesktop],
        direction: 'forward',
        columns: ['id', { desktop: n.t2KeyDesktop, cloud: n.t2KeyCloud }, n.space],
        deletes: 'mirror',
        max_delete_fraction: 0.5,
      },
      ...(threeWay ? [{
        name: VALUES.table3,
        desktop: { table: `${n.desktopSchema}.${n.mixed}` },
        cloud: { table: `${n.cloudSchema}.${n.mixed}` },
        primary_key: [n.key],
        direction: 'both',
        edits: 'both',
        conflicts: 'newest',
        deletes: 'mirror',
        timestamps: { desktop: [n.cursor1], cloud: [n.cursor1, n.cursor2] },
      }] : []),
    ],
  };
}

/** The type as format_type() prints a user type whose name needs quoting. */
const enumTypeName = (n: Names): string => quoteIdent(n.enumType);

function catalogs(n: Names): Record<string, Catalog> {
  const shared = [
    column(n.key, 'integer', { notNull: true }),
    column(n.mixed, 'text'),
    column(n.space, 'character varying(40)'),
    column(n.drop, 'text'),
    column(n.dollar, 'text'),
    column(n.comment, 'text'),
    column(n.newline, 'text'),
    column(n.enumColumn, enumTypeName(n), { category: 'E' }),
  ];
  return {
    desktop: {
      ...catalog('desktop', {
        [VALUES.table1]: catalogTable(n.desktopSchema, n.desktopTable, shared, [n.key]),
        [VALUES.table2]: catalogTable('public', n.t2Desktop, [column('id', 'integer'), column(n.t2KeyDesktop, 'text'), column(n.space, 'text')], ['id', n.t2KeyDesktop]),
        [VALUES.table3]: catalogTable(n.desktopSchema, n.mixed, [...shared, column(n.cursor1, 'timestamp with time zone')], [n.key]),
      }),
      server: { systemId: '7300000000000000001', nextXid: '5000' },
    },
    cloud: catalog('cloud', {
      [VALUES.table1]: catalogTable(
        n.cloudSchema,
        n.cloudTable,
        [...shared, column(n.origin, 'text'), column(n.cursor1, 'timestamp with time zone'), column(n.cursor2, 'timestamp with time zone')],
        [n.key],
      ),
      [VALUES.table2]: {
        ...catalogTable(
          n.t2CloudSchema,
          n.t2CloudTable,
          [column('id', 'integer'), column(n.t2KeyCloud, 'text'), column(n.space, 'text'), column(n.origin, 'text')],
          ['id', n.t2KeyCloud],
        ),
        // Rows elsewhere that a mirror delete could reach: a CASCADE child (with the origin column) whose own
        // CASCADE child has none, so the `blocked` predicate renders every hostile name at two levels.
        referencedBy: [
          {
            name: 'fk1',
            schema: n.refSchema,
            table: n.refTable,
            columns: [n.refColumn, n.refKeyColumn],
            refColumns: ['id', n.t2KeyCloud],
            onDelete: 'c',
            tableColumns: [n.refColumn, n.refKeyColumn, n.origin],
            children: [
              { name: 'fk2', schema: n.grandSchema, table: n.grandTable, columns: [n.grandColumn], refColumns: [n.refColumn], onDelete: 'n', tableColumns: [n.grandColumn], children: [] },
            ],
          },
        ],
      },
      [VALUES.table3]: catalogTable(
        n.cloudSchema,
        n.mixed,
        [...shared, column(n.origin, 'text'), column(n.cursor1, 'timestamp with time zone'), column(n.cursor2, 'timestamp with time zone')],
        [n.key],
      ),
      // A WIN1252 cloud: forward steps stage raw UTF-8 and decode row by row (SPEC §2.6). Its role
      // cannot see other sessions' transaction starts, so cursor reads carry the late-commit xmin check.
    }, { serverEncoding: 'WIN1252', seesOtherSessions: false, server: { systemId: '7300000000000000002', nextXid: '9000' } }),
  };
}

const WATERMARK = '2026-01-02T03:04:05.123456Z';

/** The document with the second table read by xmin on the desktop (pure plans only: end to end it mirrors deletes). */
function withXmin(doc: unknown): unknown {
  const d = doc as { tables: Record<string, unknown>[] };
  return { ...d, tables: d.tables.map((t, i) => (i === 1 ? { ...t, timestamps: { desktop: 'xmin' } } : t)) };
}

/** The document with the edits: both table read in full on the desktop (no cursor there, so conflicts park): checksum-first after its first run. */
function desktopInFull(doc: unknown): unknown {
  const d = doc as { tables: Record<string, unknown>[] };
  return { ...d, tables: d.tables.map((t, i) => (i === 2 ? { ...t, conflicts: 'park', timestamps: { cloud: (t.timestamps as { cloud: unknown }).cloud } } : t)) };
}

function plans(n: Names): { firstRun: Plan; incremental: Plan; checksum: Plan } {
  const config = configFrom(withXmin(document(n)));
  const cats = catalogs(n);
  const state: StateSnapshot = { [stepKey(VALUES.table1, 'reverse')]: WATERMARK, [stepKey(VALUES.table3, 'reverse')]: WATERMARK };
  return {
    firstRun: compilePlan(config, cats, {}, { direction: 'both', mode: 'auto' }),
    incremental: compilePlan(config, cats, state, { direction: 'both', mode: 'auto' }, {
      [stepKey(VALUES.table2, 'forward')]: { xmin: '4000', relfilenode: null, system: '7300000000000000001' },
      // The cursor step's late-commit check: rows written from the saved snapshot xmin on, OR-ed with the cursors.
      [stepKey(VALUES.table1, 'reverse')]: { xmin: '8000', relfilenode: null, system: '7300000000000000002' },
    }),
    // Every step has run before: the forward steps read the desktop in full, checksum-first (SPEC §8).
    // The edits: both table too, its forward step reading the desktop in full.
    checksum: compilePlan(
      configFrom(desktopInFull(document(n))),
      cats,
      { ...state, [stepKey(VALUES.table1, 'forward')]: null, [stepKey(VALUES.table2, 'forward')]: null, [stepKey(VALUES.table3, 'forward')]: null },
      { direction: 'both', mode: 'auto' },
    ),
  };
}

// Names as they are, and quoted (a regclass parameter carries its relation quoted).
const toBenign = new Map(
  Object.entries(HOSTILE).flatMap(([k, v]) => [
    [v as string, BENIGN[k as keyof Names]],
    [quoteIdent(v), quoteIdent(BENIGN[k as keyof Names])],
  ]),
);

/** Text with every hostile name in it replaced by its harmless twin (longest names first). */
function benignText(text: string): string {
  return [...toBenign.entries()].sort((a, b) => b[0].length - a[0].length).reduce((t, [from, to]) => t.replaceAll(from, to), text);
}

describe('hostile identifiers (pure: compiled from in-memory catalogs, parsed by PostgreSQL)', () => {
  const hostile = plans(HOSTILE);
  const benign = plans(BENIGN);
  const cases = [
    ['first run', hostile.firstRun, benign.firstRun],
    ['incremental', hostile.incremental, benign.incremental],
    ['checksum-first', hostile.checksum, benign.checksum],
  ] as const;

  it('every statement kind a plan can hold is rendered with hostile names', () => {
    const kinds = new Set([...planStatements(hostile.firstRun), ...planStatements(hostile.incremental), ...planStatements(hostile.checksum)].map((s) => s.statement.kind));
    // Every kind compile-plan.ts can emit (`stmt('kind', …)`), each a template.
    const source = readFileSync(fileURLToPath(new URL('../../src/compiler/compile-plan.ts', import.meta.url)), 'utf8');
    // (and the probe's statements that wrap one of those: `wrap('kind', …)`)
    const emitted = new Set([...source.matchAll(/\b(?:stmt|wrap)\(\s*'([a-z-]+)'/g)].map((m) => m[1] ?? ''));
    expect(emitted.size).toBeGreaterThan(10);
    expect([...kinds].sort()).toEqual([...emitted].sort());
    for (const kind of kinds) expect(templateNames()).toContain(kind);
    expect(hostile.firstRun.steps.map((s) => `${s.table} ${s.direction} ${s.mode}`)).toEqual([
      `${VALUES.table1} forward full`,
      `${VALUES.table2} forward full`,
      `${VALUES.table3} forward full`,
      `${VALUES.table1} reverse full`,
      `${VALUES.table3} reverse full`,
    ]);
    expect(hostile.incremental.steps.map((s) => s.mode)).toEqual(['full', 'incremental', 'full', 'incremental', 'incremental']);
    expect(planStatements(hostile.firstRun).some((s) => s.statement.kind === 'mirror-deletes')).toBe(true);
    expect(hostile.checksum.steps.filter((s) => s.compare === 'checksum').map((s) => `${s.table} ${s.direction}`)).toEqual([
      `${VALUES.table1} forward`,
      `${VALUES.table2} forward`,
      `${VALUES.table3} forward`,
    ]);
    // The incremental cursor read with the late-commit check by xmin (cursor condition OR xmin condition).
    const lateCheck = planStatements(hostile.incremental).find((s) => s.step.table === VALUES.table1 && s.step.direction === 'reverse' && s.statement.kind === 'copy-out');
    expect(lateCheck?.statement.sql).toContain("OR (f.xmin::text::bigint >= 3");
  });

  for (const [name, hostilePlan, benignPlan] of cases) {
    it(`${name}: each statement parses as exactly one statement (bootstrap: its CREATEs), the same statement as with harmless names`, () => {
      const hostileStatements = planStatements(hostilePlan);
      const benignStatements = planStatements(benignPlan);
      expect(hostileStatements.map((s) => s.label)).toEqual(benignStatements.map((s) => s.label));
      hostileStatements.forEach((h, i) => {
        const b = benignStatements[i];
        if (b === undefined) throw new Error('plans differ in length');
        const parsedHostile = parseStatements(h.statement.sql);
        const parsedBenign = parseStatements(b.statement.sql);
        if (h.statement.kind === 'bootstrap') {
          expect(parsedHostile.map(statementType), h.label).toEqual(['CreateSchemaStmt', 'CreateStmt', 'AlterTableStmt', 'AlterTableStmt', 'AlterTableStmt', 'CreateStmt', 'AlterTableStmt', 'CreateStmt', 'CreateStmt', 'AlterTableStmt', 'CreateStmt']);
        } else {
          expect(parsedHostile, h.label).toHaveLength(1);
        }
        // Structure and every identifier: the hostile tree, names mapped back, is the harmless tree.
        expect(withoutLocations(renameStrings(parsedHostile, toBenign)), h.label).toEqual(withoutLocations(parsedBenign));
        // The same parameters in the same order (names that are values, such as lock keys, mapped).
        expect(h.statement.params.map((p) => ({ ...p, name: benignText(p.name), value: p.value === null ? null : benignText(p.value) })), h.label).toEqual(b.statement.params);
      });
    });
  }

  it('every statement travels without comments and layout and parses to the same statement as planned, hostile names intact', () => {
    for (const [, hostilePlan] of cases) {
      for (const h of planStatements(hostilePlan)) {
        const sent = wireSql(h.statement.sql);
        expect(sent.length, h.label).toBeLessThanOrEqual(h.statement.sql.length);
        expect(withoutLocations(parseStatements(sent)), h.label).toEqual(withoutLocations(parseStatements(h.statement.sql)));
      }
    }
    // The merge of the edits: both table carries its decision table as comments; none of it is sent.
    const merge = planStatements(hostile.firstRun).find((s) => s.statement.kind === 'merge' && s.statement.sql.includes('both_equal'));
    expect(merge?.statement.sql).toMatch(/^--/);
    expect(wireSql(merge?.statement.sql ?? '')).not.toMatch(/both sides hold the same version/);
  });

  it('the relations come back whole: schema-qualified, unicode, quotes, spaces and dots', () => {
    const statements = planStatements(hostile.firstRun);
    const of = (table: string, direction: string, kind: string): unknown[] =>
      statements
        .filter((s) => s.step.table === table && s.step.direction === direction && s.statement.kind === kind)
        .map((s) => parseStatements(s.statement.sql));
    const rel = (schemaname: string, relname: string) => ({ schemaname, relname });

    expect(relationsOf(of(VALUES.table1, 'forward', 'copy-out'))).toEqual([rel(HOSTILE.desktopSchema, HOSTILE.desktopTable)]);
    expect(relationsOf(of(VALUES.table1, 'reverse', 'copy-out'))).toEqual([rel(HOSTILE.cloudSchema, HOSTILE.cloudTable)]);
    expect(relationsOf(of(VALUES.table2, 'forward', 'copy-out'))).toEqual([rel('public', HOSTILE.t2Desktop)]);
    const merged = relationsOf(of(VALUES.table2, 'forward', 'merge')).filter((r) => r.schemaname !== undefined);
    expect(new Set(merged.map((r) => JSON.stringify(r)))).toEqual(new Set([JSON.stringify(rel(HOSTILE.t2CloudSchema, HOSTILE.t2CloudTable))]));
    const deleted = nodesOf(of(VALUES.table2, 'forward', 'mirror-deletes'), 'DeleteStmt');
    expect(deleted).toHaveLength(1);
    expect(deleted[0]?.relation).toMatchObject(rel(HOSTILE.t2CloudSchema, HOSTILE.t2CloudTable));
    // The rows a mirror delete could reach through foreign keys (the `blocked` predicate), two levels down.
    for (const kind of ['count-mirror-deletes', 'mirror-deletes']) {
      const reached = of(VALUES.table2, 'forward', kind);
      expect(relationsOf(reached), kind).toEqual(expect.arrayContaining([rel(HOSTILE.refSchema, HOSTILE.refTable), rel(HOSTILE.grandSchema, HOSTILE.grandTable)]));
      expect(columnRefsOf(reached), kind).toEqual(expect.arrayContaining([HOSTILE.refColumn, HOSTILE.refKeyColumn, HOSTILE.grandColumn, HOSTILE.origin]));
    }

    const [bootstrap] = of(VALUES.table1, 'forward', 'bootstrap');
    expect(nodesOf(bootstrap, 'CreateSchemaStmt').map((s) => s.schemaname)).toEqual([HOSTILE.stateSchema]);
    expect(relationsOf(nodesOf(bootstrap, 'CreateStmt').map((s) => s.relation))).toEqual(
      ['state', 'runs', 'rejects', 'base', 'conflicts'].map((t) => rel(HOSTILE.stateSchema, t)),
    );
    const saved = nodesOf(of(VALUES.table1, 'forward', 'save-state'), 'InsertStmt');
    expect(saved[0]?.relation).toMatchObject(rel(HOSTILE.stateSchema, 'state'));
  });

  it('the columns come back whole: in COPY lists, INSERT and UPDATE targets, references and casts', () => {
    const statements = planStatements(hostile.firstRun).filter((s) => s.step.table === VALUES.table1 && s.step.direction === 'forward');
    const tree = (kind: string): unknown => parseStatements(statements.find((s) => s.statement.kind === kind)?.statement.sql ?? '');
    const synced: string[] = [HOSTILE.key, HOSTILE.mixed, HOSTILE.space, HOSTILE.drop, HOSTILE.dollar, HOSTILE.comment, HOSTILE.newline, HOSTILE.enumColumn];

    const copyIn = nodesOf(tree('copy-in'), 'CopyStmt')[0];
    expect(stringsOf(copyIn?.attlist)).toEqual(synced);
    expect(columnRefsOf(tree('copy-out'))).toEqual(synced);

    const merge = tree('merge');
    const insert = nodesOf(merge, 'InsertStmt')[0];
    expect(((insert?.cols ?? []) as { ResTarget: { name: string } }[]).map((c) => c.ResTarget.name)).toEqual([...synced, HOSTILE.origin]);
    const update = nodesOf(merge, 'UpdateStmt')[0];
    // Updated: every non-key column and the origin column (setting the key again is optional).
    const set = ((update?.targetList ?? []) as { ResTarget: { name: string } }[]).map((c) => c.ResTarget.name);
    expect(set.filter((c) => c !== HOSTILE.key)).toEqual([...synced.filter((c) => c !== HOSTILE.key), HOSTILE.origin]);
    // Every column reference is one of the table's columns, whole, or one of bisync's plain names.
    const refs = new Set(columnRefsOf(merge));
    for (const c of [...synced, HOSTILE.origin]) expect(refs).toContain(c);
    for (const r of refs) if (![...synced, HOSTILE.origin].includes(r)) expect(r).toMatch(/^(?:[a-z_]+|\*)$/);
    // The user type, quoted by format_type(), is one type name in every cast.
    const typeNames = nodesOf(merge, 'TypeCast').map((t) => stringsOf((t.typeName as { names?: unknown } | undefined)?.names).join('.'));
    expect(typeNames.filter((t) => t === HOSTILE.enumType).length).toBeGreaterThan(0);
    expect(typeNames.every((t) => !t.includes('DROP') || t === HOSTILE.enumType)).toBe(true);

    const staging = nodesOf(tree('create-staging'), 'ColumnDef').map((c) => c.colname);
    expect(staging).toEqual([...synced, '__bisync_cursor', '__bisync_undecoded', '__bisync_attempts', '__bisync_first_seen', '__bisync_row']);

    const reverse = planStatements(hostile.incremental).find((s) => s.step.direction === 'reverse' && s.statement.kind === 'copy-out');
    const reverseRefs = columnRefsOf(parseStatements(reverse?.statement.sql ?? ''));
    expect(reverseRefs).toEqual(expect.arrayContaining([HOSTILE.cursor1, HOSTILE.cursor2, HOSTILE.origin]));
  });

  it('values from the config are parameters, never text: markers, table name, watermark, lookback', () => {
    for (const plan of [hostile.firstRun, hostile.incremental, hostile.checksum]) {
      for (const { statement, label } of planStatements(plan)) {
        for (const value of [VALUES.table1, VALUES.table2, VALUES.forwardMark, VALUES.reverseMark, WATERMARK, '17 seconds']) {
          expect(statement.sql, label).not.toContain(value);
        }
      }
    }
    const params = planStatements(hostile.incremental).flatMap((s) => s.statement.params.map((p) => p.value));
    expect(params).toEqual(expect.arrayContaining([VALUES.table1, VALUES.table2, VALUES.forwardMark, VALUES.reverseMark, WATERMARK, '17 seconds']));
  });

  it('the state read (read-watermarks) quotes a hostile state schema', () => {
    const { sql, params } = renderSql('read-watermarks', { schema: HOSTILE.stateSchema, direction: 'reverse' });
    const [statement] = parseStatements(sql);
    expect(parseStatements(sql)).toHaveLength(1);
    expect(relationsOf(statement)).toEqual([{ schemaname: HOSTILE.stateSchema, relname: 'state' }]);
    expect(params.map((p) => p.value)).toEqual(['reverse']);
  });

  it('a type name from the catalog that could end the statement is refused, not rendered', () => {
    const cats = catalogs(BENIGN);
    const desktop = cats.desktop as Catalog;
    const cloud = cats.cloud as Catalog;
    const t1 = cloud.tables[VALUES.table1];
    if (t1 === null || t1 === undefined) throw new Error('no table');
    const evil = { ...t1, columns: t1.columns.map((c) => (c.name === BENIGN.mixed ? { ...c, type: 'text); DROP TABLE y; --' } : c)) };
    const config = configFrom(document(BENIGN));
    expect(() => compilePlan(config, { desktop, cloud: { ...cloud, tables: { ...cloud.tables, [VALUES.table1]: evil } } }, {}, { direction: 'forward', mode: 'auto' })).toThrow(
      /unexpected type name/,
    );
  });

  it('database names, which templates print inside SQL comments, cannot carry a line break: the config refuses them', () => {
    const evil = 'desk\nDROP TABLE y; --';
    const doc = { ...(document(BENIGN) as Record<string, unknown>), databases: { [evil]: DATABASES.desktop, cloud: DATABASES.cloud }, forward: { from: evil, to: 'cloud' } };
    expect(() => configFrom(doc)).toThrow(ConfigError);
  });

  it('quoteIdent refuses a NUL character rather than truncating the name', () => {
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
  });
});

describe('hostile identifiers end to end: bisync apply on real databases', () => {
  const dbs = useFreshDatabases('hostile');
  const q = pg.escapeIdentifier; // an independent quoting implementation for the test's own SQL
  const n = HOSTILE;
  const t1Desktop = `${q(n.desktopSchema)}.${q(n.desktopTable)}`;
  const t1Cloud = `${q(n.cloudSchema)}.${q(n.cloudTable)}`;
  const t2Desktop = `public.${q(n.t2Desktop)}`;
  const t2Cloud = `${q(n.t2CloudSchema)}.${q(n.t2CloudTable)}`;
  const sharedColumns = `${q(n.key)} integer PRIMARY KEY, ${q(n.mixed)} text, ${q(n.space)} varchar(40), ${q(n.drop)} text,
    ${q(n.dollar)} text, ${q(n.comment)} text, ${q(n.newline)} text, ${q(n.enumColumn)} ${q(n.enumType)}`;
  const sharedList = [n.key, n.mixed, n.space, n.drop, n.dollar, n.comment, n.newline, n.enumColumn].map(q).join(', ');
  let configFile: string;

  const rows = async (url: string, sql: string): Promise<unknown[]> => await withClient(url, async (c) => (await c.query(sql)).rows);
  const exists = async (url: string, relation: string): Promise<boolean> =>
    await withClient(url, async (c) => (await c.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [relation])).rows[0]?.ok === true);

  beforeAll(async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await withClient(url, async (c) => {
        await c.query(`CREATE TYPE ${q(n.enumType)} AS ENUM ('a', 'b''c')`);
        await c.query('CREATE TABLE victim (id integer); CREATE TABLE y (id integer)');
      });
    }
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query(`CREATE SCHEMA ${q(n.desktopSchema)}; CREATE TABLE ${t1Desktop} (${sharedColumns})`);
      await c.query(`CREATE TABLE ${t2Desktop} (id integer, ${q(n.t2KeyDesktop)} text, ${q(n.space)} text, PRIMARY KEY (id, ${q(n.t2KeyDesktop)}))`);
      await c.query(
        `INSERT INTO ${t1Desktop} (${sharedList})
         SELECT i, 'Mixed ' || i, 'sp ace', E'x''); DROP TABLE victim; --\\t' || i, '$1', E'/* not a comment */\\n--', E'line\\nbreak\\\\', 'b''c'
           FROM generate_series(1, 5) AS i`,
      );
      await c.query(`INSERT INTO ${t2Desktop} SELECT i, 'k' || i, 'v' || i FROM generate_series(1, 4) AS i`);
    });
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(`CREATE SCHEMA ${q(n.cloudSchema)}; CREATE SCHEMA ${q(n.t2CloudSchema)}`);
      await c.query(
        `CREATE TABLE ${t1Cloud} (${sharedColumns}, ${q(n.origin)} text,
           ${q(n.cursor1)} timestamptz NOT NULL DEFAULT now(), ${q(n.cursor2)} timestamptz DEFAULT now())`,
      );
      await c.query(`CREATE TABLE ${t2Cloud} (id integer, ${q(n.t2KeyCloud)} text, ${q(n.space)} text, ${q(n.origin)} text, PRIMARY KEY (id, ${q(n.t2KeyCloud)}))`);
      // A row the phone created: reverse brings it down, forward must not touch it.
      await c.query(`INSERT INTO ${t1Cloud} (${sharedList}, ${q(n.origin)}) VALUES (100, 'phone', 's', 'd', '$2', '/*', E'\\n', 'a', $1)`, [VALUES.reverseMark]);
    });
    const doc = document(HOSTILE, false) as { databases: unknown };
    configFile = writeConfig(`${JSON.stringify(doc, null, 2)}\n`, 'hostile.config.yaml');
  });

  it('apply moves every row both ways, and no table is dropped or truncated', async () => {
    const config = await testConfig(configFile, dbs);
    const report = await apply(config);
    expect(report.steps.map((s) => [s.table, s.direction, s.status, s.error])).toEqual([
      [VALUES.table1, 'forward', 'succeeded', undefined],
      [VALUES.table2, 'forward', 'succeeded', undefined],
      [VALUES.table1, 'reverse', 'succeeded', undefined],
    ]);
    expect(report.exitCode).toBe(0);

    const desktopRows = await rows(dbs.desktopUrl, `SELECT ${sharedList} FROM ${t1Desktop} ORDER BY 1`);
    const cloudRows = await rows(dbs.cloudUrl, `SELECT ${sharedList} FROM ${t1Cloud} ORDER BY 1`);
    expect(desktopRows).toHaveLength(6);
    expect(cloudRows).toEqual(desktopRows);
    expect(await rows(dbs.cloudUrl, `SELECT ${q(n.origin)} AS o, count(*)::int AS n FROM ${t1Cloud} GROUP BY 1 ORDER BY 1`)).toEqual([
      { o: VALUES.forwardMark, n: 5 },
      { o: VALUES.reverseMark, n: 1 },
    ]);
    expect(await rows(dbs.cloudUrl, `SELECT id, ${q(n.t2KeyCloud)} AS k FROM ${t2Cloud} ORDER BY 1`)).toEqual([1, 2, 3, 4].map((i) => ({ id: i, k: `k${i}` })));

    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      expect(await exists(url, 'public.victim')).toBe(true);
      expect(await exists(url, 'public.y')).toBe(true);
      expect(await rows(url, 'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $$public$$')).toEqual([{ n: 1 }]);
    }
    for (const relation of [t1Desktop, t2Desktop]) expect(await exists(dbs.desktopUrl, relation)).toBe(true);
    for (const relation of [t1Cloud, t2Cloud]) expect(await exists(dbs.cloudUrl, relation)).toBe(true);
    // bisync's state went to the hostile schema, keyed by the hostile config name.
    const state = await rows(dbs.cloudUrl, `SELECT table_name, direction FROM ${q(n.stateSchema)}.state ORDER BY 1, 2`);
    expect(state).toEqual([
      { table_name: VALUES.table1, direction: 'forward' },
      { table_name: VALUES.table2, direction: 'forward' },
    ]);
  });

  it('a second run reads incrementally past a hostile cursor column and mirrors a delete through hostile names', async () => {
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(`INSERT INTO ${t1Cloud} (${q(n.key)}, ${q(n.mixed)}, ${q(n.origin)}) VALUES (101, 'second phone row', $1)`, [VALUES.reverseMark]);
    });
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query(`DELETE FROM ${t2Desktop} WHERE id = 4`);
    });
    const config = await testConfig(configFile, dbs);
    const report = await apply(config);
    expect(report.steps.map((s) => [s.table, s.direction, s.status, s.mode, s.error])).toEqual([
      [VALUES.table1, 'forward', 'succeeded', 'full', undefined],
      [VALUES.table2, 'forward', 'succeeded', 'full', undefined],
      [VALUES.table1, 'reverse', 'succeeded', 'incremental', undefined],
    ]);
    expect(report.steps[1]?.deleted).toBe(1);
    expect(await rows(dbs.desktopUrl, `SELECT ${q(n.mixed)} AS m FROM ${t1Desktop} WHERE ${q(n.key)} = 101`)).toEqual([{ m: 'second phone row' }]);
    expect(await rows(dbs.cloudUrl, `SELECT id FROM ${t2Cloud} ORDER BY 1`)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      expect(await exists(url, 'public.victim')).toBe(true);
      expect(await exists(url, 'public.y')).toBe(true);
    }
  });
});
