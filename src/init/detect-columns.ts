import type { CatalogColumn, CatalogTable } from '../compiler/catalog.js';

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
}

/** The cursor columns of one table: timestamp or date columns named like `updated_at` / `created_at`. */
export function detectCursors(table: CatalogTable): CursorGuess {
  const rank = (c: CatalogColumn): number => {
    const n = normalise(c.name);
    const update = UPDATE_CURSOR_NAMES.indexOf(n);
    if (update >= 0) return update;
    const create = CREATE_CURSOR_NAMES.indexOf(n);
    return create >= 0 ? UPDATE_CURSOR_NAMES.length + create : -1;
  };
  const found = table.columns
    .filter((c) => !c.generated && CURSOR_TYPES.has(c.type) && rank(c) >= 0)
    .sort((a, b) => rank(a) - rank(b) || compareText(a.name, b.name));
  const updates = found.filter((c) => rank(c) < UPDATE_CURSOR_NAMES.length);
  if (found.length > 0 && updates.length === 0) {
    // A cursor that never moves on UPDATE would make incremental reads miss every edit.
    return {
      columns: [],
      note: `${found.map((c) => c.name).join(', ')} only records when a row was created, so an incremental read would miss edits; this side is read in full`,
    };
  }
  return { columns: found.map((c) => c.name) };
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
