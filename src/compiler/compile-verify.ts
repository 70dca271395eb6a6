import type { Direction, QualifiedName, ResolvedConfig, ResolvedOrigin, ResolvedTable } from '../config/types.js';
import type { Catalog, CatalogColumn, CatalogTable } from './catalog.js';
import { comparedCasts, VERIFY_BUCKET_BITS } from './bucket-checksum.js';
import type { ChecksumColumn } from './bucket-checksum.js';
import { checkCatalogs } from './check-catalog.js';
import { CompileError, selectTables, stepKey } from './compile-plan.js';
import type { StateSnapshot } from './compile-plan.js';
import { syncedColumns } from './columns.js';
import type { PlanStatement } from './plan-types.js';
import { displayName } from './quote-ident.js';
import { renderSql } from './render-sql.js';

export const VERIFY_CURSOR = 'bisync_verify';

/** A column as the verify templates see it: its name on one database and the casts both sides apply. */
export type VerifyColumn = ChecksumColumn;

/** The read-only statements verify runs on one database for one table. */
export interface VerifySide {
  /** Config name of the database. */
  readonly database: string;
  readonly relation: string;
  /** Key column names on this database, in primary_key order. */
  readonly keyColumns: readonly string[];
  readonly begin: PlanStatement;
  readonly settings: PlanStatement;
  /** Row count and checksum per key bucket. */
  readonly buckets: PlanStatement;
  /** DECLARE a cursor over key hash, key and row hash of the rows in the given buckets. */
  readonly openRows: PlanStatement;
  readonly fetchRows: PlanStatement;
  readonly commit: PlanStatement;
}

export interface VerifyTable {
  readonly table: string;
  readonly directions: readonly Direction[];
  readonly deletes: 'keep' | 'mirror';
  /** The origin rule; null when the table has none (every row then belongs to the direction it syncs). */
  readonly origin: ResolvedOrigin | null;
  /** Synced columns (keys first) by name on each side, with the casts both sides apply. */
  readonly columns: readonly { readonly from: string; readonly to: string; readonly casts: readonly string[] }[];
  /** The forward source (desktop) and forward target (cloud, which holds the origin column). */
  readonly from: VerifySide;
  readonly to: VerifySide;
}

export interface VerifyPlan {
  readonly config: string;
  /** Config names of the forward source and target. */
  readonly from: string;
  readonly to: string;
  readonly tables: readonly VerifyTable[];
}

/**
 * `(config, catalogs, tables) → VerifyPlan`: the read-only statements that checksum and list each
 * table's rows on both databases, every column cast to the same type on both sides. Pure.
 */
export function compileVerify(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, tables: readonly string[] = [], state: StateSnapshot = {}): VerifyPlan {
  const selected = selectTables(config, tables);
  const problems = checkCatalogs({ ...config, tables: selected }, catalogs);
  if (problems.length > 0) {
    throw new CompileError(
      `the config does not match the databases:\n${problems
        .map((p) => `  ${config.file}:${p.location.line}:${p.location.column}: table "${p.table}" on ${p.database} (${p.relation}): ${p.message}`)
        .join('\n')}`,
      problems,
      'run `bisync validate --live` for details and hints',
    );
  }
  const { from, to } = config.forward;
  return { config: config.file, from, to, tables: selected.map((t) => compileTable(config, catalogs, t, state)) };
}

function compileTable(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, table: ResolvedTable, state: StateSnapshot): VerifyTable {
  const { from, to } = config.forward;
  const fromCat = catalogTable(catalogs, from, table.name);
  const toCat = catalogTable(catalogs, to, table.name);
  const { columns: pairs } = syncedColumns(config, table, { [from]: fromCat, [to]: toCat });
  // Where types differ, values end in the type of the table written to: the cloud's for tables
  // synced forward, the desktop's for tables only synced in reverse.
  const typeSide = table.directions.includes('forward') ? to : from;
  const compared = (pair: Readonly<Record<string, string>>): { from: string; to: string; casts: readonly string[] } => {
    const a = findColumn(fromCat, pair[from]);
    const b = findColumn(toCat, pair[to]);
    return { from: a.name, to: b.name, casts: typeSide === to ? comparedCasts(b, a) : comparedCasts(a, b) };
  };
  const keys = table.primaryKey.map(compared);
  // Key columns are hashed into the row too, so a row's checksum stands for the whole row.
  const columns = [...keys, ...pairs.map(compared).filter((c) => !keys.some((k) => k.from === c.from))];
  const origin = table.origin;
  const side = (database: string, cat: CatalogTable, role: 'from' | 'to'): VerifySide => {
    const relation: QualifiedName = { schema: cat.schema, name: cat.name };
    const context = {
      database,
      relation,
      keys: keys.map((k): VerifyColumn => ({ name: k[role], casts: k.casts })),
      columns: columns.map((c): VerifyColumn => ({ name: c[role], casts: c.casts })),
      origin: role === 'to' && origin !== null ? origin.column : null,
      owned: null,
      unmarkedField: false,
      bits: VERIFY_BUCKET_BITS,
      total: false,
      checksumNote: 'Columns whose types differ between the sides are cast to the type they are compared in.',
      checksumZone: null,
      behind: cursorBehind(table, state, database, role === 'from' ? 'forward' : 'reverse'),
      cursor: VERIFY_CURSOR,
      read: null,
      // Both sides in one zone, the zone of the server whose type the values end in: a timestamp
      // and a timestamptz compare as they were converted there, and timestamptz text is the same.
      timeZone: catalogs[typeSide]?.timeZone ?? 'UTC',
      zoneNote: `${typeSide}'s own on both sides, where values of differing time types were converted`,
      timeouts: null,
    };
    const stmt = (kind: string, purpose: string, template = kind): PlanStatement => {
      const { sql, params } = renderSql(template, context);
      return { kind, side: role === 'from' ? 'source' : 'target', purpose, sql, params };
    };
    return {
      database,
      relation: displayName(relation),
      keyColumns: keys.map((k) => k[role]),
      begin: stmt('begin-verify', `one read-only snapshot of ${database} for the table`),
      settings: stmt('settings', 'transaction-local text formats, the same on both sides'),
      buckets: stmt('verify-buckets', 'rows and checksum per key bucket', 'bucket-checksums'),
      openRows: stmt('verify-bucket-rows', 'keys and row hashes of the differing buckets'),
      fetchRows: stmt('verify-fetch', 'the next page of those rows'),
      commit: stmt('commit', 'end the snapshot'),
    };
  };
  return {
    table: table.name,
    directions: table.directions,
    deletes: table.deletes,
    origin,
    columns,
    from: side(from, fromCat, 'from'),
    to: side(to, toCat, 'to'),
  };
}

/**
 * What verify-bucket-rows needs to tell whether a row's cursor value is older than the watermark
 * (less lookback) of the direction that reads this database: incremental runs of that direction
 * never read the row again, so a difference in it is drift the cursor missed. Null when that
 * direction is not configured, reads this database in full or by xmin, or has no watermark yet.
 */
function cursorBehind(table: ResolvedTable, state: StateSnapshot, database: string, direction: Direction): { columns: readonly string[]; watermark: string; lookback: string } | null {
  const columns = table.timestamps[database] ?? [];
  const watermark = state[stepKey(table.name, direction)] ?? null;
  if (!table.directions.includes(direction) || columns.length === 0 || table.xmin.includes(database) || watermark === null) return null;
  return { columns, watermark, lookback: `${table.lookbackSeconds} seconds` };
}

function findColumn(table: CatalogTable, name: string | undefined): CatalogColumn {
  const found = table.columns.find((c) => c.name === name);
  if (found === undefined) throw new CompileError(`column "${name ?? ''}" does not exist on ${displayName(table)}`);
  return found;
}

function catalogTable(catalogs: Readonly<Record<string, Catalog>>, database: string, table: string): CatalogTable {
  const found = catalogs[database]?.tables[table];
  if (found === null || found === undefined) throw new CompileError(`table "${table}" does not exist on ${database}`);
  return found;
}
