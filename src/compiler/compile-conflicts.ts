import type { ResolvedConfig, ResolvedTable } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import type { Catalog, CatalogTable } from './catalog.js';
import { syncedColumns } from './columns.js';
import { CompileError, selectTables } from './compile-plan.js';
import type { ColumnMapping, PlanStatement } from './plan-types.js';
import { renderSql } from './render-sql.js';

/** A statement and the database it runs on. */
export interface ConflictsStatement {
  database: string;
  statement: PlanStatement;
}

/** `bisync conflicts`: one read-only query per database for the pending conflicts of `tables` (all when empty). Pure. */
export function compileConflictsList(config: ResolvedConfig, tables: readonly string[]): ConflictsStatement[] {
  const names = selectTables(config, tables).map((t) => t.name);
  return Object.keys(config.databases).map((database) => {
    const { sql, params } = renderSql('conflicts-list', { schema: config.stateSchema, tables: JSON.stringify(names) });
    return { database, statement: { kind: 'conflicts-list', side: 'target' as const, purpose: 'pending conflicts', sql, params } };
  });
}

/** The statements of `bisync resolve` for one table, keeping one database's version. */
export interface ResolvePlan {
  table: string;
  keep: string;
  other: string;
  /** Key column names per database, in key order. */
  keyColumns: Readonly<Record<string, readonly string[]>>;
  /** On `keep`: the kept row (as `other` names its columns), by key. */
  read: PlanStatement;
  /** On `other`: write the kept row, or delete it. */
  write: PlanStatement;
  /** Per database: the generation of its copy of the base for a key. */
  generation: Readonly<Record<string, PlanStatement>>;
  /** Per database: record what it now holds as the base and clear the conflict. */
  settle: Readonly<Record<string, PlanStatement>>;
}

/**
 * `bisync resolve --table T --keep D`: read the kept version on D, write it (or its delete) to the
 * other database, then record the new base and clear the conflict on both. Pure.
 */
export function compileResolve(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, tableName: string, keep: string): ResolvePlan {
  const databases = Object.keys(config.databases);
  if (!databases.includes(keep)) {
    throw new BisyncError('RESOLVE_KEEP', `--keep ${keep} names no database of ${config.file}`, { exitCode: ExitCode.usage, hint: `--keep takes ${databases.join(' or ')}` });
  }
  const [table] = selectTables(config, [tableName]);
  if (table === undefined) throw new CompileError(`--table names "${tableName}", not in ${config.file}`);
  const other = keep === config.forward.from ? config.forward.to : config.forward.from;
  const cat = (db: string): CatalogTable => {
    const found = catalogs[db]?.tables[table.name];
    if (found === null || found === undefined) throw new CompileError(`table "${table.name}" does not exist on ${db}`);
    return found;
  };
  const { columns: pairs } = syncedColumns(config, table, { [config.forward.from]: cat(config.forward.from), [config.forward.to]: cat(config.forward.to) });
  const statement = (kind: string, from: string, to: string, extra: Record<string, unknown> = {}): PlanStatement => {
    const ctx = templateContext(config, table, pairs, cat(from), cat(to), from, to);
    const { sql, params } = renderSql(kind, { ...ctx, ...extra });
    return { kind, side: 'target', purpose: `bisync resolve on ${to}`, sql, params };
  };
  const origin = other === config.forward.to && table.origin !== null ? { column: table.origin.column, mine: table.origin.forward } : null;
  return {
    table: table.name,
    keep,
    other,
    keyColumns: Object.fromEntries(databases.map((db) => [db, table.primaryKey.map((k) => k[db] ?? '')])),
    read: { ...statement('resolve-read', keep, other), side: 'source', purpose: `bisync resolve: the version kept, on ${keep}` },
    write: statement('resolve-write', keep, other, { origin }),
    generation: { [keep]: statement('resolve-generation', other, keep), [other]: statement('resolve-generation', keep, other) },
    settle: { [keep]: statement('resolve-settle', other, keep), [other]: statement('resolve-settle', keep, other) },
  };
}

function templateContext(
  config: ResolvedConfig,
  table: ResolvedTable,
  pairs: readonly Readonly<Record<string, string>>[],
  sourceCat: CatalogTable,
  targetCat: CatalogTable,
  sourceName: string,
  targetName: string,
): Record<string, unknown> {
  const mapping = (pair: Readonly<Record<string, string>>): ColumnMapping => {
    const source = pair[sourceName] ?? '';
    const target = pair[targetName] ?? '';
    const type = targetCat.columns.find((c) => c.name === target)?.type ?? 'text';
    return { source, target, type, sourceType: sourceCat.columns.find((c) => c.name === source)?.type ?? type };
  };
  const columns = pairs.map(mapping);
  const keys = table.primaryKey.map(mapping);
  return {
    schema: config.stateSchema,
    table: table.name,
    sourceName,
    targetName,
    source: { schema: sourceCat.schema, name: sourceCat.name },
    target: { schema: targetCat.schema, name: targetCat.name },
    columns,
    keys,
    updatable: columns.filter((c) => !keys.some((k) => k.target === c.target)),
    overriding: columns.some((c) => targetCat.columns.find((t) => t.name === c.target)?.identity === 'a'),
    origin: null,
  };
}

/** A `--key` as the base stores keys: the key values' text, in key order. */
export function parseConflictKey(key: string, columns: readonly string[], table: string): string[] {
  const trimmed = key.trim();
  const fail = (why: string): BisyncError =>
    new BisyncError('RESOLVE_BAD_KEY', `--key ${key} does not name a row of "${table}": ${why}`, {
      exitCode: ExitCode.usage,
      hint: columns.length === 1 ? `give the value of ${columns[0] ?? ''}, e.g. --key 42` : `give a JSON object, e.g. --key '{${columns.map((c) => `"${c}": …`).join(', ')}}'`,
    });
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw fail('it starts with { but is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw fail('not a JSON object');
    const object = parsed as Record<string, unknown>;
    if (Object.keys(object).length !== columns.length || !columns.every((c) => c in object)) throw fail(`its columns are not the key columns (${columns.join(', ')})`);
    return columns.map((c) => String(object[c]));
  }
  if (columns.length !== 1) throw fail(`the key has ${columns.length} columns`);
  return [key];
}
