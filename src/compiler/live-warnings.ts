import type { ResolvedConfig, ResolvedTable } from '../config/types.js';
import type { Catalog, CatalogTable } from './catalog.js';
import type { LiveProblem } from './check-catalog.js';
import { syncedColumns } from './columns.js';
import { displayName } from './quote-ident.js';
import { sequenceOverlapWarnings } from './sequence-overlap.js';
import { analyseTriggers, describeWrites } from './trigger-columns.js';

/**
 * What `validate --live` warns about: the config runs, but not as it should. A synced column that
 * a BEFORE trigger rewrites on the database bisync writes (every run rewrites the row, SPEC §2.4),
 * and a foreign key — also one declared on a partition or inheritance child — to another synced
 * table that `after` does not run first (its new rows are rejected until the next run), and key
 * sequences on both sides of a `both` table that will hand out the same values. Pure.
 */
export function liveWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  return [...triggerWarnings(config, catalogs), ...orderWarnings(config, catalogs), ...sequenceOverlapWarnings(config, catalogs)];
}

/** Synced columns a BEFORE row trigger sets on a database a step of the table writes. */
export function triggerWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const warnings: LiveProblem[] = [];
  for (const table of config.tables) {
    const found = foundOnBoth(config, catalogs, table);
    if (found === null) continue;
    const { columns } = syncedColumns(config, table, found);
    for (const db of writtenDatabases(config, table)) {
      const t = found[db];
      if (t === undefined) continue;
      const { writes } = analyseTriggers(t);
      const synced = new Set(columns.map((c) => c[db]));
      for (const column of [...new Set(writes.map((w) => w.column))].filter((c) => synced.has(c))) {
        warnings.push(
          warning(table, db, t, {
            message: `synced column ${describeWrites(column, writes)} is set by a trigger here, so the value bisync writes does not stay: every run finds the row different and rewrites it, and verify reports drift`,
            hint: 'leave it out with a columns: list (bisync init does), or see "Triggers on the written side" in the README',
          }),
        );
      }
    }
  }
  return warnings;
}

/**
 * Foreign keys on a written database — also those declared on a partition or inheritance child —
 * to another synced table that `after` does not run first.
 */
export function orderWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const warnings: LiveProblem[] = [];
  const closure = afterClosure(config.tables);
  for (const table of config.tables) {
    const found = foundOnBoth(config, catalogs, table);
    if (found === null) continue;
    for (const db of writtenDatabases(config, table)) {
      const t = found[db];
      if (t === undefined) continue;
      for (const fk of t.foreignKeys) {
        const parent = config.tables.find((p) => p.name !== table.name && sameRelation(catalogs[db]?.tables[p.name], fk.refSchema, fk.refTable));
        if (parent === undefined) continue;
        // Ordered either way already: a parent listed (directly or not) in after, or a cycle the
        // config broke on purpose by running the parent after this table.
        if (closure.get(table.name)?.has(parent.name) === true || closure.get(parent.name)?.has(table.name) === true) continue;
        const where = fk.declaredOn === undefined || fk.declaredOn === null ? '' : ` declared on ${fk.declaredOn}`;
        warnings.push(
          warning(table, db, t, {
            message: `foreign key ${fk.name}${where} references ${parent.name}, but ${table.name} does not run after it: rows whose ${parent.name} parent is new are rejected on the first run and retried on the next`,
            hint: `add ${parent.name} to after`,
          }),
        );
      }
    }
  }
  return dedupe(warnings);
}

/** The table's catalog entry on every database, or null when one lacks it (validate reports that). */
function foundOnBoth(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, table: ResolvedTable): Record<string, CatalogTable> | null {
  const found: Record<string, CatalogTable> = {};
  for (const db of Object.keys(config.databases)) {
    const t = catalogs[db]?.tables[table.name];
    if (t === null || t === undefined) return null;
    found[db] = t;
  }
  return found;
}

/** The databases the table's steps write: forward writes the forward target, reverse its source. */
function writtenDatabases(config: ResolvedConfig, table: ResolvedTable): string[] {
  return table.directions.map((d) => (d === 'forward' ? config.forward.to : config.forward.from));
}

function warning(table: ResolvedTable, database: string, t: CatalogTable, text: { message: string; hint: string }): LiveProblem {
  return { table: table.name, database, relation: displayName(t), location: table.location, ...text };
}

function sameRelation(t: CatalogTable | null | undefined, schema: string, name: string): boolean {
  return t !== null && t !== undefined && t.schema === schema && t.name === name;
}

/** Per table, every table it runs after, directly or through other tables' after. */
function afterClosure(tables: readonly ResolvedTable[]): Map<string, Set<string>> {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const result = new Map<string, Set<string>>();
  for (const t of tables) {
    const seen = new Set<string>();
    const stack = [...t.after];
    while (stack.length > 0) {
      const next = stack.pop();
      if (next === undefined || seen.has(next)) continue;
      seen.add(next);
      stack.push(...(byName.get(next)?.after ?? []));
    }
    result.set(t.name, seen);
  }
  return result;
}

// The same foreign key declared on each partition warns once per partition: keep the first.
function dedupe(warnings: LiveProblem[]): LiveProblem[] {
  const seen = new Set<string>();
  return warnings.filter((w) => {
    const key = `${w.table}\0${w.database}\0${w.message.replace(/^foreign key \S+( declared on \S+)? /, '')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
