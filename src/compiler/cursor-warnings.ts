import type { ResolvedConfig } from '../config/types.js';
import type { Catalog } from './catalog.js';
import type { LiveProblem } from './check-catalog.js';
import { displayName } from './quote-ident.js';
import { analyseTriggers } from './trigger-columns.js';

/**
 * Cursor columns no trigger keeps current on UPDATE (SPEC §2.2: incremental reads see only rows whose
 * cursor moved): an edit that does not set the column is never read by an incremental run. Says so,
 * or that it cannot tell when a trigger's function cannot be read. Warnings, not problems. Pure.
 */
export function cursorWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): LiveProblem[] {
  const warnings: LiveProblem[] = [];
  for (const table of config.tables) {
    for (const [db, cursors] of Object.entries(table.timestamps)) {
      const t = catalogs[db]?.tables[table.name];
      if (t === null || t === undefined || cursors.length === 0) continue;
      const { writes, unread } = analyseTriggers(t);
      const maintained = cursors.filter((c) => writes.some((w) => w.column === c && w.onUpdate && w.clock));
      if (maintained.length > 0) continue;
      const base = { table: table.name, database: db, relation: displayName(t), location: table.location };
      if (unread.length > 0) {
        warnings.push({
          ...base,
          message: `cannot tell whether cursor column${cursors.length === 1 ? '' : 's'} ${cursors.join(', ')} ${cursors.length === 1 ? 'is' : 'are'} set on every update: trigger${unread.length === 1 ? '' : 's'} ${unread.map((u) => u.name).join(', ')} could not be read`,
          hint: `make sure every update sets ${cursors[0] ?? ''} (e.g. a moddatetime trigger), or incremental runs miss the edit; bisync verify reports rows that differ`,
        });
        continue;
      }
      warnings.push({
        ...base,
        message: `no trigger sets cursor column${cursors.length === 1 ? '' : 's'} ${cursors.join(', ')} on update: an edit that does not set ${cursors.length === 1 ? 'it' : 'them'} is never read by an incremental run`,
        hint: `add a trigger that sets ${cursors[0] ?? ''} on every update (CREATE EXTENSION moddatetime; CREATE TRIGGER … BEFORE UPDATE … EXECUTE FUNCTION moddatetime(${cursors[0] ?? ''})), or make sure every writer sets it; bisync verify reports rows that differ`,
      });
    }
  }
  return warnings;
}
