import type { ColumnPair, ResolvedConfig, ResolvedTable } from '../config/types.js';
import type { CatalogColumn, CatalogTable } from './catalog.js';

export interface ColumnProblem {
  database: string;
  message: string;
  hint?: string;
}

/**
 * The columns a table syncs: its explicit `columns`, or else the columns both sides have (by name,
 * in the forward source's column order), minus the origin column and generated columns.
 */
export function syncedColumns(
  config: ResolvedConfig,
  table: ResolvedTable,
  catalogs: Readonly<Record<string, CatalogTable>>,
): { columns: ColumnPair[]; problems: ColumnProblem[] } {
  const { from, to } = config.forward;
  const problems: ColumnProblem[] = [];
  const source = catalogs[from];
  const target = catalogs[to];
  if (source === undefined || target === undefined) return { columns: [], problems };
  const originColumn = table.origin?.column;
  const byName = (t: CatalogTable): Map<string, CatalogColumn> => new Map(t.columns.map((c) => [c.name, c]));
  const sides = { [from]: byName(source), [to]: byName(target) };

  if (table.columns !== null) {
    for (const pair of table.columns) {
      for (const db of [from, to]) {
        const name = pair[db] ?? '';
        const column = sides[db]?.get(name);
        if (column === undefined) {
          problems.push({ database: db, message: `column "${name}" does not exist`, hint: `check the spelling, or map it with { ${from}: ..., ${to}: ... }` });
        } else if (column.generated) {
          problems.push({ database: db, message: `column "${name}" is a generated column and cannot be written`, hint: 'remove it from columns' });
        }
      }
    }
    return { columns: [...table.columns], problems };
  }

  const columns = source.columns
    .filter((c) => !c.generated && c.name !== originColumn)
    .filter((c) => {
      const other = sides[to]?.get(c.name);
      return other !== undefined && !other.generated;
    })
    .map((c): ColumnPair => ({ [from]: c.name, [to]: c.name }));
  if (columns.length === 0) {
    problems.push({ database: to, message: 'the two sides have no column name in common', hint: 'list the columns with a columns: mapping' });
  }
  return { columns, problems };
}
