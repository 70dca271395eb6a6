/**
 * Shared helpers of the compiler tests: the real PostgreSQL parser (libpg-query) and walks over its
 * parse trees, configs and catalogs built in memory for the pure tests, every statement of a plan,
 * and golden files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModule, parseSync } from 'libpg-query';
import { expect } from 'vitest';
import type { Catalog, CatalogColumn, CatalogTable } from '../../src/compiler/catalog.js';
import type { Plan, PlanStatement, PlanStep } from '../../src/compiler/plan-types.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { ResolvedConfig } from '../../src/config/types.js';

await loadModule();

/** A parse-tree value: libpg-query's JSON (nodes are `{ NodeType: { ...fields } }`). */
export type Tree = unknown;

/** One statement as PostgreSQL parses it: `{ SelectStmt: {...} }`, `{ CopyStmt: {...} }`, … */
export type ParsedStatement = Record<string, Record<string, unknown>>;

/** Parse SQL text with the real PostgreSQL parser; throws on a syntax error. */
export function parseStatements(sql: string): ParsedStatement[] {
  const result = parseSync(sql) as { stmts?: { stmt: ParsedStatement }[] };
  return (result.stmts ?? []).map((s) => s.stmt);
}

/** Parse text that must be exactly one statement. */
export function parseOne(sql: string): ParsedStatement {
  const statements = parseStatements(sql);
  expect(statements, `expected exactly one statement in:\n${sql}`).toHaveLength(1);
  return statements[0] as ParsedStatement;
}

/** The node type of a parsed statement (`SelectStmt`, `CopyStmt`, …). */
export function statementType(statement: ParsedStatement): string {
  return Object.keys(statement)[0] ?? '';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Visit every object in a tree, with the chain of objects above it (nearest last). */
export function walk(tree: Tree, visit: (node: Record<string, unknown>, ancestors: readonly Record<string, unknown>[]) => void): void {
  const go = (value: unknown, ancestors: Record<string, unknown>[]): void => {
    if (Array.isArray(value)) {
      for (const item of value) go(item, ancestors);
    } else if (isObject(value)) {
      visit(value, ancestors);
      ancestors.push(value);
      for (const child of Object.values(value)) go(child, ancestors);
      ancestors.pop();
    }
  };
  go(tree, []);
}

/** Every node of one type (`FuncCall`, `DeleteStmt`, …) anywhere in the tree: the node's fields. */
export function nodesOf(tree: Tree, type: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  walk(tree, (node) => {
    const inner = node[type];
    if (isObject(inner)) found.push(inner);
  });
  return found;
}

/** The tree without source positions, so trees of different texts can be compared. */
export function withoutLocations(tree: Tree): Tree {
  if (Array.isArray(tree)) return tree.map(withoutLocations);
  if (!isObject(tree)) return tree;
  return Object.fromEntries(
    Object.entries(tree)
      .filter(([key]) => !/(?:location|_start|_end|^stmt_len)$/.test(key))
      .map(([key, value]) => [key, withoutLocations(value)]),
  );
}

/** Replace every string in the tree that `map` has a key for (identifiers, mostly). */
export function renameStrings(tree: Tree, map: ReadonlyMap<string, string>): Tree {
  if (typeof tree === 'string') return map.get(tree) ?? tree;
  if (Array.isArray(tree)) return tree.map((t) => renameStrings(t, map));
  if (!isObject(tree)) return tree;
  return Object.fromEntries(Object.entries(tree).map(([key, value]) => [key, renameStrings(value, map)]));
}

/** `sval`s of a list of `{ String: { sval } }` nodes (column references, qualified names). */
export function stringsOf(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((n: unknown) => (isObject(n) && isObject(n.String) ? String(n.String.sval ?? '') : '*'));
}

/** Every relation the tree names, as `schema.name` (or `name`), from RangeVars wrapped or not. */
export function relationsOf(tree: Tree): { schemaname: string | undefined; relname: string }[] {
  const found: { schemaname: string | undefined; relname: string }[] = [];
  walk(tree, (node) => {
    if (typeof node.relname === 'string') {
      found.push({ schemaname: typeof node.schemaname === 'string' ? node.schemaname : undefined, relname: node.relname });
    }
  });
  return found;
}

/** The last field of every ColumnRef (the column name), `*` for a star. */
export function columnRefsOf(tree: Tree): string[] {
  return nodesOf(tree, 'ColumnRef').map((c) => stringsOf(c.fields).at(-1) ?? '');
}

/** Names of every function called in the tree (last part of the qualified name). */
export function functionNamesOf(tree: Tree): string[] {
  return nodesOf(tree, 'FuncCall').map((f) => stringsOf(f.funcname).at(-1) ?? '');
}

/** Every string constant (`'...'`) in the tree. */
export function stringConstantsOf(tree: Tree): string[] {
  return nodesOf(tree, 'A_Const')
    .map((c) => c.sval)
    .filter(isObject)
    .map((s) => String(s.sval ?? ''));
}

// --- plans --------------------------------------------------------------------------------------

export interface PlannedStatement {
  step: PlanStep;
  statement: PlanStatement;
  /** Bootstrap statements run once per target; the others are the step. */
  list: 'bootstrap' | 'probe' | 'statements';
  /** `orgmaster forward #3 merge`: names the statement in assertion messages. */
  label: string;
}

/** Every statement of a plan, bootstrap first for each step. */
export function planStatements(plan: Plan): PlannedStatement[] {
  return plan.steps.flatMap((step) =>
    (['bootstrap', 'probe', 'statements'] as const).flatMap((list) =>
      (step[list] ?? []).map((statement, i) => ({
        step,
        statement,
        list,
        label: `${step.table} ${step.direction} ${list}#${i} ${statement.kind}`,
      })),
    ),
  );
}

/** The plan's name for the parameter `$n` of a statement. */
export function paramName(statement: PlanStatement, ref: Record<string, unknown>): string {
  return statement.params[Number(ref.number) - 1]?.name ?? `$${String(ref.number)}?`;
}

// --- configs and catalogs built in memory ----------------------------------------------------------

/** URLs for configs that are compiled but never connected to. */
export const OFFLINE_ENV: NodeJS.ProcessEnv = {
  DESKTOP_DATABASE_URL: 'postgres://office@localhost:5432/practice',
  CLOUD_DATABASE_URL: 'postgres://postgres@localhost:5433/postgres',
};

/**
 * A config from a plain object (written as JSON, which is YAML too, so any name survives without
 * YAML quoting rules), resolved by the real loader.
 */
export function configFrom(document: unknown, env: NodeJS.ProcessEnv = OFFLINE_ENV, file = 'compiler-test.config.yaml'): ResolvedConfig {
  return parseConfig(file, `${JSON.stringify(document, null, 2)}\n`, env);
}

/** The two databases every in-memory config uses: forward desktop → cloud. */
export const DATABASES = {
  desktop: { url: '${DESKTOP_DATABASE_URL}' },
  cloud: { url: '${CLOUD_DATABASE_URL}' },
};

/** A catalog column; types as `format_type()` prints them. */
export function column(name: string, type: string, options: Partial<CatalogColumn> = {}): CatalogColumn {
  const category = /^(integer|bigint|smallint|numeric)/.test(type)
    ? 'N'
    : /^(text|character|"char")/.test(type)
      ? 'S'
      : /^(timestamp|date)/.test(type)
        ? 'D'
        : type === 'boolean'
          ? 'B'
          : 'U';
  return { name, type, category, notNull: false, hasDefault: false, generated: false, identity: '', ...options };
}

/** A catalog table with a primary key (its only unique key; its columns NOT NULL, as PostgreSQL makes them). */
export function catalogTable(schema: string, name: string, columns: readonly CatalogColumn[], primaryKey: readonly string[]): CatalogTable {
  const withKeys = columns.map((c) => (primaryKey.includes(c.name) ? { ...c, notNull: true } : c));
  return { schema, name, kind: 'r', columns: withKeys, primaryKey, uniqueKeys: [primaryKey], foreignKeys: [] };
}

/** A catalog of one database from config table names to tables. */
export function catalog(
  database: string,
  tables: Record<string, CatalogTable | null>,
  server: Partial<Pick<Catalog, 'timeZone' | 'seesOtherSessions' | 'serverEncoding' | 'server'>> = {},
): Catalog {
  return { database, serverVersion: 170009, timeZone: 'UTC', seesOtherSessions: true, ...server, tables };
}

// --- golden files ------------------------------------------------------------------------------

const GOLDEN_DIR = fileURLToPath(new URL('./golden/', import.meta.url));

/** The path of a golden file under test/compiler/golden/. */
export function goldenPath(name: string): string {
  return `${GOLDEN_DIR}${name}`;
}

/**
 * Compare `actual` with the golden file `name`; `UPDATE_GOLDEN=1` rewrites it instead. A missing
 * golden file fails: goldens are reviewed and committed, never created silently.
 */
export function expectGolden(name: string, actual: string): void {
  const file = goldenPath(name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  compareGolden(name, actual);
}

/** Fail unless `actual` equals the golden file `name` (never rewrites it). */
export function compareGolden(name: string, actual: string): void {
  const file = goldenPath(name);
  if (!existsSync(file)) throw new Error(`golden file ${file} is missing: run UPDATE_GOLDEN=1 npx vitest run test/compiler, review and commit it`);
  const expected = readFileSync(file, 'utf8');
  if (actual !== expected) {
    throw new Error(`${name} differs from its golden file (test/compiler/golden/${name}).\n${changedHunks(expected, actual)}\nIf the change is intended, rerun with UPDATE_GOLDEN=1, review \`git diff test/compiler/golden\` and commit it.`);
  }
}

/**
 * The first few changed hunks between two texts, as `-`/`+` lines: a greedy line diff that
 * resynchronises on the nearest non-blank common line. Good enough to read a golden change.
 */
function changedHunks(expected: string, actual: string, maxHunks = 8, maxLines = 12): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const hunks: string[] = [];
  let i = 0;
  let j = 0;
  while ((i < a.length || j < b.length) && hunks.length < maxHunks) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
      continue;
    }
    let sync: [number, number] = [a.length - i, b.length - j];
    search: for (let k = 1; k < 400; k++) {
      for (let x = 0; x <= k; x++) {
        const line = a[i + x];
        if (line !== undefined && line.trim() !== '' && line === b[j + k - x]) {
          sync = [x, k - x];
          break search;
        }
      }
    }
    const lines = [...a.slice(i, i + sync[0]).map((l) => `- ${l}`), ...b.slice(j, j + sync[1]).map((l) => `+ ${l}`)];
    hunks.push([`@@ line ${i + 1}`, ...lines.slice(0, maxLines), ...(lines.length > maxLines ? [`  … ${lines.length - maxLines} more changed lines`] : [])].join('\n'));
    i += sync[0];
    j += sync[1];
  }
  return hunks.join('\n');
}

/** Read a golden file (for values recorded in it, such as the plan hash). */
export function readGolden(name: string): string {
  return readFileSync(goldenPath(name), 'utf8');
}

/** The config path is the only thing in a plan that depends on where the repository lives. */
export function normalised(plan: Plan): Plan {
  return { ...plan, config: 'sync.config.yaml' };
}

// --- a small in-memory config and catalogs, for the pure tests ---------------------------------

/**
 * Four tables: `orgs` forward without cursors, `clients` both ways with cursors on the cloud,
 * `notes` reverse insert-only with one cursor, `tags` forward with deletes: mirror and cursors on
 * the desktop.
 */
export function smallDocument(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    databases: DATABASES,
    forward: { from: 'desktop', to: 'cloud' },
    defaults: { origin: { column: 'source', forward: 'D', reverse: 'M' } },
    tables: [
      { name: 'orgs', primary_key: ['id'], direction: 'forward' },
      { name: 'clients', primary_key: ['id'], direction: 'both', after: ['orgs'], timestamps: { cloud: ['updated_at', 'created_at'] } },
      { name: 'notes', primary_key: ['id'], direction: 'reverse', timestamps: { cloud: ['updated_at'] }, reverse: { write: 'insert-only' } },
      { name: 'tags', primary_key: ['id'], direction: 'forward', timestamps: { desktop: ['changed_on'] }, deletes: 'mirror' },
    ],
    ...overrides,
  };
}

export function smallCatalogs(): Record<string, Catalog> {
  const body = [column('id', 'integer', { notNull: true }), column('name', 'character varying(50)'), column('amount', 'numeric(12,2)')];
  const cloudExtra = [
    column('source', 'character(1)'),
    column('updated_at', 'timestamp with time zone', { notNull: true, hasDefault: true }),
    column('created_at', 'timestamp with time zone', { notNull: true, hasDefault: true }),
  ];
  const tables = ['orgs', 'clients', 'notes'];
  return {
    desktop: catalog('desktop', {
      ...Object.fromEntries(tables.map((t) => [t, catalogTable('public', t, body, ['id'])])),
      tags: catalogTable('public', 'tags', [...body, column('changed_on', 'date')], ['id']),
    }),
    cloud: catalog('cloud', {
      ...Object.fromEntries(tables.map((t) => [t, catalogTable('public', t, [...body, ...cloudExtra], ['id'])])),
      tags: catalogTable('public', 'tags', [...body, column('changed_on', 'date'), column('source', 'text')], ['id']),
    }),
  };
}
