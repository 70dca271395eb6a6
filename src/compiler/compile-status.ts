import type { Direction, ResolvedConfig } from '../config/types.js';
import type { Catalog } from './catalog.js';
import { sessionWarnings } from './session-warnings.js';
import type { SessionWarning } from './session-warnings.js';
import type { PlanStatement } from './plan-types.js';
import { watermarkAhead } from './compile-plan.js';
import { renderSql } from './render-sql.js';

export interface StatusStep {
  table: string;
  direction: Direction;
  source: string;
  target: string;
  cursors: readonly string[];
  /** The settings apply's read uses on the source (text formats, the source's TimeZone), run before `waiting`. */
  settings: PlanStatement;
  /** Counts rows newer than the watermark on the source; null when the source has no cursor columns. */
  waiting: (watermark: string | null) => PlanStatement | null;
  /** The source's clock when its catalog was read (to tell a watermark that is ahead of it). */
  sourceClock: string | undefined;
  /** Forward with an origin rule: counts unmarked rows (origin column NULL) on the target; else null. */
  unmarked: PlanStatement | null;
}

export interface StatusPlan {
  /** Per database that steps write to: the query for its steps' last runs and pending rejects. */
  lastRuns: { database: string; direction: Direction; statement: PlanStatement }[];
  steps: StatusStep[];
  warnings: SessionWarning[];
}

/** The read-only queries of `bisync status`. Pure: the executor runs them. */
export function compileStatus(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>, tables: readonly string[]): StatusPlan {
  const lastRuns = (['forward', 'reverse'] as const).flatMap((direction) => {
    const database = direction === 'forward' ? config.forward.to : config.forward.from;
    const names = config.tables.filter((t) => t.directions.includes(direction) && (tables.length === 0 || tables.includes(t.name))).map((t) => t.name);
    if (names.length === 0) return [];
    const { sql, params } = renderSql('status-last-run', { schema: config.stateSchema, direction, tables: JSON.stringify(names) });
    return [{ database, direction, statement: { kind: 'status-last-run', side: 'target' as const, purpose: 'last runs and pending rejects', sql, params } }];
  });
  const steps: StatusStep[] = [];
  for (const direction of ['forward', 'reverse'] as const) {
    for (const table of config.tables) {
      if (tables.length > 0 && !tables.includes(table.name)) continue;
      if (!table.directions.includes(direction)) continue;
      const { from: source, to: target } = direction === 'forward' ? config.forward : config.reverse;
      const cursors = table.timestamps[source] ?? [];
      const relation = catalogs[source]?.tables[table.name];
      const originFilter = direction === 'reverse' && table.origin !== null ? table.origin.column : null;
      const targetRelation = catalogs[target]?.tables[table.name];
      let unmarked: PlanStatement | null = null;
      if (direction === 'forward' && table.origin !== null && targetRelation !== null && targetRelation !== undefined) {
        const { sql, params } = renderSql('status-unmarked', {
          target: { schema: targetRelation.schema, name: targetRelation.name },
          targetName: target,
          sourceName: source,
          originColumn: table.origin.column,
        });
        unmarked = { kind: 'status-unmarked', side: 'target', purpose: 'unmarked rows on the target', sql, params };
      }
      const settings = renderSql('settings', {
        read: null,
        timeZone: catalogs[source]?.timeZone ?? 'UTC',
        zoneNote: `${source}'s own (what its sessions get by default)`,
      });
      steps.push({
        table: table.name,
        direction,
        source,
        target,
        cursors,
        unmarked,
        settings: { kind: 'settings', side: 'source', purpose: 'the text formats and TimeZone apply reads with', ...settings },
        sourceClock: catalogs[source]?.server?.clock,
        waiting: (watermark) => {
          if (cursors.length === 0 || relation === null || relation === undefined) return null;
          // A watermark past the source's clock is not trusted (the next run reads in full): count every row.
          if (watermarkAhead(watermark, catalogs[source]?.server?.clock)) watermark = null;
          const { sql, params } = renderSql('status-waiting', {
            source: { schema: relation.schema, name: relation.name },
            sourceName: source,
            cursors,
            cursorMany: cursors.length > 1,
            originFilter,
            originValue: table.origin?.reverse ?? null,
            watermark,
          });
          return { kind: 'status-waiting', side: 'source', purpose: 'rows waiting on the source', sql, params };
        },
      });
    }
  }
  const selected = tables.length === 0 ? config.tables : config.tables.filter((t) => tables.includes(t.name));
  return { lastRuns, steps, warnings: sessionWarnings({ ...config, tables: selected }, catalogs) };
}
