import type { CatalogColumn, CatalogTable } from '../compiler/catalog.js';
import type { TriggerWrite } from '../compiler/trigger-columns.js';

/**
 * Column names `init` recognises, compared after lower-casing and dropping `_`, so `updated_at`,
 * `UpdatedAt` and `updatedat` are one name. Only names are looked at: `init` never reads a row.
 */
const UPDATE_CURSOR_NAMES = [
  'updatedat',
  'modifiedat',
  'lastmodified',
  'lastmodifiedat',
  'lastupdated',
  'lastupdatedat',
  'changedat',
  'updatedon',
  'modifiedon',
  'datemodified',
  'modifieddate',
  'updateddate',
  'lastchanged',
  'lastupdate',
  'lastupdatedon',
  'lastmodifiedon',
  'lastmodifieddate',
  'lastupdatedate',
  'updatedate',
  'modifydate',
  'datelastmodified',
  'updated',
  'modified',
  'changed',
  'changedon',
  'mtime',
  'modtime',
  'updatetime',
  'updatedtime',
  'modifiedtime',
  'lastmodifiedtime',
  'updatedts',
  'modifiedts',
  'lastchange',
  'lastedited',
  'editedat',
];
const CREATE_CURSOR_NAMES = ['createdat', 'createdon', 'insertedat', 'datecreated', 'createddate', 'creationdate'];

/** Names an ownership column goes by, most likely first. */
export const ORIGIN_NAMES = ['source', 'origin', 'src', 'datasource', 'recordsource', 'rowsource', 'syncsource', 'syncorigin'];

// The types `validate --live` accepts for a cursor column (src/compiler/check-catalog.ts).
const CURSOR_TYPES = new Set(['timestamp with time zone', 'timestamp without time zone', 'date']);

const normalise = (name: string): string => name.toLowerCase().replaceAll('_', '');

export interface CursorGuess {
  /** Newest-first: columns that change on every update before those set once at insert. */
  readonly columns: string[];
  /** Set when candidates were found but not used, saying why. */
  readonly note?: string;
  /** Cursor columns a trigger sets to the clock on every UPDATE, with the trigger's name. */
  readonly maintained: readonly { readonly column: string; readonly trigger: string }[];
}

/**
 * The cursor columns of one table: timestamp or date columns a BEFORE UPDATE trigger sets to the
 * clock (`writes`, from `analyseTriggers`), then those named like `updated_at` / `last_update` /
 * `created_at`.
 */
export function detectCursors(table: CatalogTable, writes: readonly TriggerWrite[] = []): CursorGuess {
  const maintained = writes.filter((w) => w.onUpdate && w.clock);
  const rank = (c: CatalogColumn): number => {
    // A column the database itself moves on every UPDATE is the surest cursor.
    if (maintained.some((w) => w.column === c.name)) return 0;
    const n = normalise(c.name);
    const update = UPDATE_CURSOR_NAMES.indexOf(n);
    if (update >= 0) return 1 + update;
    const create = CREATE_CURSOR_NAMES.indexOf(n);
    return create >= 0 ? 1 + UPDATE_CURSOR_NAMES.length + create : -1;
  };
  const found = table.columns
    .filter((c) => !c.generated && CURSOR_TYPES.has(c.type) && rank(c) >= 0)
    .sort((a, b) => rank(a) - rank(b) || compareText(a.name, b.name));
  const updates = found.filter((c) => rank(c) <= UPDATE_CURSOR_NAMES.length);
  if (found.length > 0 && updates.length === 0) {
    // A cursor that never moves on UPDATE would make incremental reads miss every edit.
    return {
      columns: [],
      note: `${found.map((c) => c.name).join(', ')} only records when a row was created, so an incremental read would miss edits; this side is read in full`,
      maintained: [],
    };
  }
  const columns = found.map((c) => c.name);
  const by = maintained.filter((w) => columns.includes(w.column)).map((w) => ({ column: w.column, trigger: w.trigger }));
  return { columns, maintained: by };
}

/**
 * The ownership column of a cloud table: a text column named like `source` that the desktop table
 * does not have (a `source` column on both sides is ordinary data, synced like any other).
 */
export function detectOrigin(cloud: CatalogTable, desktop: CatalogTable): { column: string | null; note?: string } {
  const desktopNames = new Set(desktop.columns.map((c) => c.name));
  const candidates = cloud.columns
    .filter((c) => !c.generated && c.category === 'S' && ORIGIN_NAMES.includes(normalise(c.name)))
    .sort((a, b) => ORIGIN_NAMES.indexOf(normalise(a.name)) - ORIGIN_NAMES.indexOf(normalise(b.name)) || compareText(a.name, b.name));
  const usable = candidates.find((c) => !desktopNames.has(c.name));
  const shared = candidates.filter((c) => desktopNames.has(c.name)).map((c) => c.name);
  const note = shared.length > 0 ? `${shared.join(', ')} exists on both sides, so it is synced as data, not taken as the origin column` : undefined;
  return { column: usable?.name ?? null, ...(note === undefined ? {} : { note }) };
}

/** Code-point order: the same on every machine, whatever the locale. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
