import type { CatalogColumn, CatalogTable, DatabaseListing, ListedTable } from '../compiler/catalog.js';
import type { TableDirection } from '../config/types.js';
import { analyseTriggers, describeWrites, writtenColumns } from '../compiler/trigger-columns.js';
import type { TriggerAnalysis, TriggerWrite } from '../compiler/trigger-columns.js';
import { compareText, detectCursors, detectOrigin } from './detect-columns.js';

export type Side = 'desktop' | 'cloud';
export const SIDES: readonly Side[] = ['desktop', 'cloud'];

/**
 * Schemas a hosted platform (Supabase) manages for itself. Their tables are never app data to sync,
 * and listing each of them as "only on cloud" would bury the tables that matter.
 */
export const PLATFORM_SCHEMAS = [
  '_analytics',
  '_realtime',
  'auth',
  'cron',
  'extensions',
  'graphql',
  'graphql_public',
  'net',
  'pgbouncer',
  'pgsodium',
  'pgsodium_masks',
  'realtime',
  'storage',
  'supabase_functions',
  'supabase_migrations',
  'vault',
];

/** One table both databases have, and what `init` proposes for it. */
export interface TableProposal {
  /** The config `name`: the bare table name when it resolves on both sides, else `schema.name`. */
  readonly name: string;
  readonly desktop: ListedTable;
  readonly cloud: ListedTable;
  readonly primaryKey: readonly string[];
  /** An explicit column list when some common columns must be left out; null: the columns both sides have. */
  readonly columns: readonly string[] | null;
  readonly direction: TableDirection;
  /** Cursor columns per side; a side without any is absent. */
  readonly timestamps: Readonly<Partial<Record<Side, readonly string[]>>>;
  /** Sides without cursor columns whose table is a plain table: proposed `timestamps: { side: xmin }` (SPEC §8). */
  readonly xmin: readonly Side[];
  /** The origin column of the cloud table, or null. */
  readonly origin: string | null;
  /** Comment lines for this table; guesses start with `GUESS:`. */
  readonly notes: readonly string[];
  /** Columns left out of `columns` because a BEFORE trigger sets them on a side bisync writes. */
  readonly leftOutByTrigger: readonly string[];
  /** Per side, cursor columns a trigger sets to the clock on every UPDATE, with that trigger. */
  readonly maintainedCursors: Readonly<Partial<Record<Side, readonly { readonly column: string; readonly trigger: string }[]>>>;
}

export interface SkippedTable {
  readonly name: string;
  readonly reason: string;
}

export interface Proposals {
  /** In name order; `table-order.ts` decides the file order. */
  readonly tables: TableProposal[];
  readonly skipped: SkippedTable[];
  readonly onlyOn: Readonly<Record<Side, string[]>>;
  /** Platform schemas present on each side, left out. */
  readonly platformSchemas: Readonly<Record<Side, string[]>>;
}

/** Pair the tables of both databases by schema and name and propose a config entry for each pair. */
export function proposeTables(listings: Readonly<Record<Side, DatabaseListing>>): Proposals {
  const platformSchemas: Record<Side, string[]> = { desktop: [], cloud: [] };
  const bySide = {} as Record<Side, Map<string, ListedTable>>;
  for (const side of SIDES) {
    const tables = new Map<string, ListedTable>();
    for (const t of listings[side].tables) {
      if (PLATFORM_SCHEMAS.includes(t.schema)) {
        if (!platformSchemas[side].includes(t.schema)) platformSchemas[side].push(t.schema);
      } else {
        tables.set(`${t.schema}\0${t.name}`, t);
      }
    }
    platformSchemas[side].sort(compareText);
    bySide[side] = tables;
  }

  const tables: TableProposal[] = [];
  const skipped: SkippedTable[] = [];
  const onlyOn: Record<Side, string[]> = { desktop: [], cloud: [] };
  for (const side of SIDES) {
    const other = side === 'desktop' ? 'cloud' : 'desktop';
    for (const [key, t] of bySide[side]) if (!bySide[other].has(key)) onlyOn[side].push(tableLabel(t, t.visible));
    onlyOn[side].sort(compareText);
  }

  const keys = [...bySide.desktop.keys()].filter((k) => bySide.cloud.has(k)).sort(compareText);
  for (const key of keys) {
    const desktop = bySide.desktop.get(key);
    const cloud = bySide.cloud.get(key);
    if (desktop === undefined || cloud === undefined) continue;
    const name = tableLabel(desktop, desktop.visible && cloud.visible);
    if (desktop.schema.includes('.')) {
      skipped.push({ name, reason: 'its schema name contains a dot, which a config table name cannot express' });
      continue;
    }
    const proposal = proposeTable(name, desktop, cloud);
    if ('reason' in proposal) skipped.push({ name, reason: proposal.reason });
    else tables.push(proposal);
  }
  return { tables, skipped, onlyOn, platformSchemas };
}

/** How a config names a table: bare when the search_path finds it, else `schema.name`. */
function tableLabel(t: ListedTable, bare: boolean): string {
  // A bare name with a dot would be read as schema.table, so such names are always qualified.
  return bare && !t.name.includes('.') ? t.name : `${t.schema}.${t.name}`;
}

function proposeTable(name: string, desktop: ListedTable, cloud: ListedTable): TableProposal | { reason: string } {
  const notes: string[] = [];
  const cloudColumns = new Map(cloud.columns.map((c) => [c.name, c]));
  const desktopColumns = new Map(desktop.columns.map((c) => [c.name, c]));

  const origin = detectOrigin(cloud, desktop);
  const triggers: Record<Side, TriggerAnalysis> = { desktop: analyseTriggers(desktop), cloud: analyseTriggers(cloud) };
  // A column a BEFORE trigger sets on the side bisync writes never keeps the value bisync wrote, so
  // comparing it would rewrite the row on every run: leave it out. The desktop is written only by
  // reverse, which needs the origin column.
  const keyColumns = new Set([...(desktop.primaryKey ?? []), ...(cloud.primaryKey ?? [])]);
  const written: Side[] = origin.column === null ? ['cloud'] : ['cloud', 'desktop'];
  const triggerSet = new Map<string, Side[]>();
  for (const side of written) {
    for (const column of writtenColumns(triggers[side].writes)) {
      if (!keyColumns.has(column)) triggerSet.set(column, [...(triggerSet.get(column) ?? []), side]);
    }
  }

  const synced: string[] = [];
  const byTrigger: string[] = [];
  const leftOutByTrigger: string[] = [];
  let leftOut = false;
  for (const d of desktop.columns) {
    const c = cloudColumns.get(d.name);
    if (c === undefined) continue;
    if (d.generated || c.generated) {
      notes.push(`${d.name} is a generated column on ${d.generated ? 'desktop' : 'cloud'}, so it is not synced`);
    } else if (!compatible(d, c)) {
      notes.push(`${d.name} is ${d.type} on desktop but ${c.type} on cloud: left out of columns (make the types compatible to sync it)`);
      leftOut = true;
    } else if (triggerSet.has(d.name)) {
      const sides = triggerSet.get(d.name) ?? [];
      byTrigger.push(sides.map((side) => `${describeWrites(d.name, triggers[side].writes)} on ${side}`).join(', '));
      leftOutByTrigger.push(d.name);
      leftOut = true;
    } else {
      synced.push(d.name);
    }
  }
  if (byTrigger.length > 0) notes.push(`not synced, as a BEFORE trigger sets them where bisync writes: ${byTrigger.join('; ')}`);
  for (const side of written) {
    for (const t of triggers[side].unread) {
      notes.push(
        `on ${side}, BEFORE trigger ${t.name} runs ${t.function} (${t.language}), which bisync cannot read: if it changes synced columns, leave those out of columns, or every run rewrites the rows it touches`,
      );
    }
  }

  const key = chooseKey(desktop, cloud, new Set(synced));
  if ('reason' in key) return key;
  if (key.note !== undefined) notes.push(key.note);

  if (origin.note !== undefined) notes.push(origin.note);
  const timestamps: Partial<Record<Side, string[]>> = {};
  const maintainedCursors: Partial<Record<Side, { column: string; trigger: string }[]>> = {};
  const cursorNames: Record<Side, string[]> = { desktop: [], cloud: [] };
  for (const [side, table] of [['desktop', desktop], ['cloud', cloud]] as const) {
    const cursors = detectCursors(table, triggers[side].writes);
    if (cursors.note !== undefined) notes.push(`on ${side}, ${cursors.note}`);
    if (cursors.maintained.length > 0) maintainedCursors[side] = [...cursors.maintained];
    if (cursors.columns.length > 0) timestamps[side] = cursors.columns;
    cursorNames[side] = cursors.columns;
  }
  // Without cursor columns a plain table is still read incrementally, by the transaction id
  // PostgreSQL stamps on every row version (a partitioned table has no single file to watch).
  const xmin = (['desktop', 'cloud'] as const).filter((side) => timestamps[side] === undefined && (side === 'desktop' ? desktop : cloud).kind === 'r');

  const onlyDesktop = desktop.columns.filter((c) => !cloudColumns.has(c.name) && !cursorNames.desktop.includes(c.name)).map((c) => c.name);
  const onlyCloud = cloud.columns
    .filter((c) => !desktopColumns.has(c.name) && c.name !== origin.column && !cursorNames.cloud.includes(c.name))
    .map((c) => c.name);
  if (onlyDesktop.length > 0) notes.push(`only on desktop, not synced: ${onlyDesktop.join(', ')}`);
  if (onlyCloud.length > 0) notes.push(`only on cloud, not synced: ${onlyCloud.join(', ')}`);

  // A NOT NULL column without a default that is not synced makes every insert into that side fail.
  const syncedSet = new Set(synced);
  // A BEFORE INSERT trigger that sets the column fills it before the NOT NULL check.
  const unfillable = (t: CatalogTable, stamped: string | null, writes: readonly TriggerWrite[]): string[] =>
    t.columns
      .filter((c) => c.notNull && !c.hasDefault && !c.generated && !syncedSet.has(c.name) && c.name !== stamped)
      .filter((c) => !writes.some((w) => w.column === c.name && w.onInsert))
      .map((c) => c.name);
  const blocksForward = unfillable(cloud, origin.column, triggers.cloud.writes);
  const blocksReverse = unfillable(desktop, null, triggers.desktop.writes);
  const canForward = blocksForward.length === 0;
  const canReverse = origin.column !== null && blocksReverse.length === 0;
  const noOrigin = 'the cloud table has no origin column (a text column named source, origin, src, …); reverse needs one to tell rows written on the cloud from rows forward copied, so this table syncs forward only';
  const cannot = (side: Side, columns: string[]): string =>
    `${side} column${columns.length === 1 ? '' : 's'} ${columns.join(', ')} ${columns.length === 1 ? 'is' : 'are'} NOT NULL without a default and not synced, so inserts into ${side} would fail`;

  let direction: TableDirection;
  if (canForward && canReverse) {
    direction = 'both';
  } else if (canForward) {
    direction = 'forward';
    notes.push(origin.column === null ? noOrigin : `forward only: ${cannot('desktop', blocksReverse)}`);
  } else if (canReverse) {
    direction = 'reverse';
    notes.push(`reverse only: ${cannot('cloud', blocksForward)}`);
  } else {
    return { reason: `${cannot('cloud', blocksForward)}${origin.column === null ? ', and reverse needs an origin column on cloud' : `, and ${cannot('desktop', blocksReverse)}`}` };
  }

  return {
    name,
    desktop,
    cloud,
    primaryKey: key.columns,
    columns: leftOut ? synced : null,
    direction,
    timestamps,
    xmin,
    origin: origin.column,
    notes,
    leftOutByTrigger,
    maintainedCursors,
  };
}

/**
 * The columns that identify a row on both sides: the primary key, else a unique constraint, on the
 * same NOT NULL columns on both sides and among the synced columns.
 */
function chooseKey(desktop: CatalogTable, cloud: CatalogTable, synced: ReadonlySet<string>): { columns: string[]; note?: string } | { reason: string } {
  const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
  const uniqueOn = (t: CatalogTable, cols: readonly string[]): boolean => t.uniqueKeys.some((u) => sameSet(u, cols));
  const isPrimary = (t: CatalogTable, cols: readonly string[]): boolean => t.primaryKey !== null && sameSet(t.primaryKey, cols);
  const notNull = (t: CatalogTable, cols: readonly string[]): boolean => cols.every((n) => t.columns.find((c) => c.name === n)?.notNull === true);
  const onBoth = (cols: readonly string[]): boolean => cols.every((n) => synced.has(n)) && uniqueOn(desktop, cols) && uniqueOn(cloud, cols);

  const candidates: (readonly string[])[] = [];
  if (desktop.primaryKey !== null) candidates.push(desktop.primaryKey);
  if (cloud.primaryKey !== null) candidates.push(cloud.primaryKey);
  const uniques = desktop.uniqueKeys.filter((u) => !candidates.some((c) => sameSet(c, u)));
  candidates.push(...[...uniques].sort((a, b) => a.length - b.length));

  const shared = candidates.filter(onBoth);
  const chosen = shared.find((cols) => notNull(desktop, cols) && notNull(cloud, cols));
  if (chosen !== undefined) {
    const columns = [...chosen];
    if (isPrimary(desktop, columns) && isPrimary(cloud, columns)) return { columns };
    const kind = (t: CatalogTable): string => (isPrimary(t, columns) ? 'the primary key' : 'a unique constraint');
    return { columns, note: `GUESS: rows are matched by (${columns.join(', ')}): ${kind(desktop)} on desktop, ${kind(cloud)} on cloud` };
  }
  const nullable = shared[0];
  if (nullable !== undefined) {
    return { reason: `its only key shared by both sides, unique (${nullable.join(', ')}), allows NULL, which cannot identify a row. Make those columns NOT NULL (or add a primary key) on both sides, then add the table` };
  }
  return {
    reason: `no primary key or unique constraint on the same columns on both sides (desktop: ${describeKeys(desktop)}; cloud: ${describeKeys(cloud)}). bisync matches rows by key: add one on both sides, then add the table`,
  };
}

function describeKeys(t: CatalogTable): string {
  const parts: string[] = [];
  if (t.primaryKey !== null) parts.push(`primary key (${t.primaryKey.join(', ')})`);
  for (const u of t.uniqueKeys) {
    if (t.primaryKey === null || u.join() !== t.primaryKey.join()) parts.push(`unique (${u.join(', ')})`);
  }
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** Same type, or the same type category, as `validate --live` requires (src/compiler/check-catalog.ts). */
function compatible(a: CatalogColumn, b: CatalogColumn): boolean {
  if (a.type === b.type) return true;
  if (a.category !== b.category) return false;
  return a.category !== 'U' && a.category !== 'A' && a.category !== 'E';
}
