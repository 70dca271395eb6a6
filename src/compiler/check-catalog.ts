import type { Direction, ResolvedConfig, ResolvedTable } from '../config/types.js';
import type { Catalog, CatalogColumn, CatalogTable } from './catalog.js';
import { checkSafety } from './check-safety.js';
import { syncedColumns } from './columns.js';
import { displayName } from './quote-ident.js';
import { analyseTriggers } from './trigger-columns.js';

/** A mismatch between the config and what a database really holds. */
export interface LiveProblem {
  table: string;
  database: string;
  /** The table as named on that database. */
  relation: string;
  location: { line: number; column: number };
  message: string;
  hint?: string;
}

const CURSOR_TYPE = /^(timestamp(\(\d\))? with(out)? time zone|date)$/;

/**
 * Every check of `validate --live` that makes a plan impossible (SPEC §1): tables, columns, keys,
 * cursor and origin columns, types, and row-level security that would hide every row from bisync.
 */
export function checkCatalogs(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const problems: LiveProblem[] = [];
  for (const table of config.tables) problems.push(...checkTable(config, table, catalogs));
  return [...problems, ...checkSafety(config, catalogs).errors];
}

function checkTable(config: ResolvedConfig, table: ResolvedTable, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const problems: LiveProblem[] = [];
  const report = (database: string, message: string, hint?: string): void => {
    const configured = table.tables[database];
    const resolved = catalogs[database]?.tables[table.name];
    problems.push({
      table: table.name,
      database,
      relation: resolved !== null && resolved !== undefined ? `${resolved.schema}.${resolved.name}` : configured === undefined ? table.name : displayName(configured),
      location: table.location,
      message,
      ...(hint === undefined ? {} : { hint }),
    });
  };

  const found: Record<string, CatalogTable> = {};
  for (const db of Object.keys(config.databases)) {
    const entry = catalogs[db]?.tables[table.name];
    if (entry === null || entry === undefined) {
      report(db, 'table does not exist', `create it, or name the table on ${db} with ${db}: { table: schema.name }`);
    } else {
      found[db] = entry;
    }
  }
  if (Object.keys(found).length < 2) return problems;

  const { columns, problems: columnProblems } = syncedColumns(config, table, found);
  for (const p of columnProblems) report(p.database, p.message, p.hint);

  for (const pair of columns) {
    for (const [db, name] of Object.entries(pair)) {
      if (name.startsWith('__bisync_')) {
        report(db, `column "${name}" uses the __bisync_ prefix bisync reserves for its staging columns`, 'rename the column, or leave it out with a columns: list');
      }
    }
  }
  const { from, to } = config.forward;
  for (const pair of columns) {
    const a = column(found[from], pair[from]);
    const b = column(found[to], pair[to]);
    if (a !== undefined && b !== undefined && !compatible(a, b)) {
      report(to, `column "${b.name}" is ${b.type} but "${a.name}" on ${from} is ${a.type}`, 'make the types compatible, or leave the column out with a columns: list');
    }
  }

  for (const db of [from, to]) {
    const t = found[db];
    if (t === undefined) continue;
    for (const key of table.primaryKey) {
      if (column(t, key[db]) === undefined) report(db, `primary key column "${key[db] ?? ''}" does not exist`, 'fix primary_key');
    }
  }

  const written = new Set(table.directions.map((d: Direction) => (d === 'forward' ? to : from)));
  for (const db of written) {
    const t = found[db];
    if (t === undefined) continue;
    const keyColumns = table.primaryKey.map((k) => k[db] ?? '');
    const unique = t.uniqueKeys.some((u) => u.length === keyColumns.length && keyColumns.every((k) => u.includes(k)));
    if (!unique) {
      report(db, `no primary key or unique constraint on (${keyColumns.join(', ')})`, `bisync matches rows by key: add PRIMARY KEY (${keyColumns.join(', ')}) or a unique constraint on ${db}`);
    }
    for (const name of keyColumns) {
      if (column(t, name)?.notNull === false) {
        report(db, `key column "${name}" allows NULL, and a NULL key cannot identify a row`, `make it NOT NULL (ALTER TABLE ... ALTER COLUMN ${name} SET NOT NULL), or choose another key`);
      }
    }
    const synced = new Set(columns.map((c) => c[db]));
    // A BEFORE INSERT trigger that sets the column fills it before the NOT NULL check.
    const filledByTrigger = new Set(analyseTriggers(t).writes.filter((w) => w.onInsert).map((w) => w.column));
    for (const c of t.columns) {
      const stamped = db === to && c.name === table.origin?.column;
      if (c.notNull && !c.hasDefault && !c.generated && !synced.has(c.name) && !stamped && !filledByTrigger.has(c.name)) {
        report(db, `column "${c.name}" is NOT NULL without a default, but is not synced, so inserts would fail`, 'add it to the synced columns, or give it a default');
      }
    }
  }

  for (const [db, cursors] of Object.entries(table.timestamps)) {
    const t = found[db];
    if (t === undefined) continue;
    for (const name of cursors) {
      const c = column(t, name);
      if (c === undefined) report(db, `cursor column "${name}" does not exist`, 'fix timestamps, or remove it to read this side in full');
      else if (!CURSOR_TYPE.test(c.type)) report(db, `cursor column "${name}" is ${c.type}, not a timestamp`, 'cursor columns must be timestamptz, timestamp or date');
    }
  }

  if (table.origin !== null) {
    const t = found[to];
    const c = t === undefined ? undefined : column(t, table.origin.column);
    if (c === undefined) {
      report(to, `origin column "${table.origin.column}" does not exist`, `add it (e.g. ALTER TABLE ... ADD COLUMN ${table.origin.column} text), or set origin: false for this table`);
    } else if (c.category !== 'S') {
      report(to, `origin column "${c.name}" is ${c.type}, not a text type`, 'use text, varchar or char for the origin column');
    }
  }
  return problems;
}

/**
 * The privileges each step needs that the connecting role lacks (SELECT on F; SELECT, INSERT,
 * UPDATE, and DELETE for mirror deletes, on T). Not a reason to refuse a plan — the step fails
 * with the same message — but `validate --live` says it before the night does.
 */
export function checkGrants(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const problems: LiveProblem[] = [];
  for (const table of config.tables) {
    for (const direction of table.directions) {
      const { from: source, to: target } = direction === 'forward' ? config.forward : config.reverse;
      const needs: [string, readonly ('select' | 'insert' | 'update' | 'delete')[]][] = [
        [source, ['select']],
        [target, ['select', 'insert', 'update', ...(direction === 'forward' && table.deletes === 'mirror' ? (['delete'] as const) : [])]],
      ];
      for (const [db, wanted] of needs) {
        const found = catalogs[db]?.tables[table.name];
        const granted = found?.privileges;
        if (found === null || found === undefined || granted === undefined) continue;
        const missing = wanted.filter((p) => !granted[p]).map((p) => p.toUpperCase());
        if (missing.length === 0) continue;
        problems.push({
          table: table.name,
          database: db,
          relation: `${found.schema}.${found.name}`,
          location: table.location,
          message: `the ${direction} step needs ${missing.join(', ')} on this table, which the role bisync connects as does not have`,
          hint: `GRANT ${missing.join(', ')} ON ${found.schema}.${found.name} TO <the role in the ${db} URL>`,
        });
      }
    }
  }
  return problems;
}

/**
 * Warnings, not errors: an origin column that allows NULL or has no default lets an application
 * insert unmarked rows (forgetting its marker). bisync never deletes those and reverse never sends
 * them, so they sit on the cloud unsynced until someone marks them.
 */
export function checkOriginMarking(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const warnings: LiveProblem[] = [];
  const db = config.forward.to;
  for (const table of config.tables) {
    if (table.origin === null) continue;
    const found = catalogs[db]?.tables[table.name];
    const c = found === null || found === undefined ? undefined : column(found, table.origin.column);
    if (found === null || found === undefined || c === undefined || (c.notNull && c.hasDefault)) continue;
    const gaps = [...(c.notNull ? [] : ['allows NULL']), ...(c.hasDefault ? [] : ['has no default'])];
    warnings.push({
      table: table.name,
      database: db,
      relation: `${found.schema}.${found.name}`,
      location: table.location,
      message: `origin column "${c.name}" ${gaps.join(' and ')}: a row inserted without a marker is unmarked; forward never deletes it and reverse never sends it (apply, status and verify report such rows)`,
      hint: `have the application on ${db} always set ${c.name}${table.directions.includes('reverse') ? ` (to '${table.origin.reverse}')` : ''}, e.g. ALTER TABLE ${found.schema}.${found.name} ALTER COLUMN ${c.name} SET DEFAULT '${table.origin.reverse}', then SET NOT NULL once no row is NULL`,
    });
  }
  return warnings;
}

function column(table: CatalogTable | undefined, name: string | undefined): CatalogColumn | undefined {
  return table?.columns.find((c) => c.name === name);
}

/** Same type, or the same type category (numbers with numbers, text with text, times with times). */
function compatible(a: CatalogColumn, b: CatalogColumn): boolean {
  if (a.type === b.type) return true;
  if (a.category !== b.category) return false;
  return a.category !== 'U' && a.category !== 'A' && a.category !== 'E';
}
