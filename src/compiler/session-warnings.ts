import type { ResolvedConfig } from '../config/types.js';
import type { Catalog } from './catalog.js';

/** What bisync's role cannot see and the sync is less safe for: reported by `validate --live`, `plan` and `status`. */
export interface SessionWarning {
  database: string;
  message: string;
  hint: string;
}

/**
 * Warnings about the databases as bisync's role sees them. Today one: a source read through cursor
 * columns whose role cannot see other sessions' transaction starts. The late-commit clamp then goes
 * by pg_locks and, for plain tables, the read snapshot's xmin (rows written by transactions running
 * at the last read are read again); other relations (views, partitioned tables) have only lookback.
 */
export function sessionWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): SessionWarning[] {
  const warnings: SessionWarning[] = [];
  for (const [database, catalog] of Object.entries(catalogs)) {
    if (catalog.seesOtherSessions) continue;
    const readByCursor = config.tables.filter((t) => t.directions.some((d) => (d === 'forward' ? config.forward.from : config.forward.to) === database) && (t.timestamps[database] ?? []).length > 0);
    if (readByCursor.length === 0) continue;
    const notPlain = readByCursor.filter((t) => catalog.tables[t.name]?.kind !== 'r').map((t) => t.name);
    const plain = readByCursor.filter((t) => !notPlain.includes(t.name)).map((t) => t.name);
    const starts = `the role cannot see other sessions' transaction starts (pg_stat_activity.xact_start)`;
    const byXmin = plain.length === 0 ? '' : `for tables ${plain.join(', ')} the late-commit clamp on ${database} goes by pg_locks and the read snapshot's xmin instead, which read a transaction that started before a run and wrote after it on the next run`;
    const byLookback =
      notPlain.length === 0
        ? ''
        : `for ${notPlain.join(', ')} (not plain tables: no xmin) the clamp cannot keep the watermark below a transaction that started before a run and writes after it; ` +
          'it still holds the watermark while a transaction with uncommitted writes to the table is open';
    warnings.push({
      database,
      message: `${starts}; ${[byXmin, byLookback].filter((p) => p !== '').join('; ')}`,
      hint:
        notPlain.length === 0
          ? `optional: GRANT pg_read_all_stats TO <bisync's role> on ${database} lets the clamp see them too`
          : `GRANT pg_read_all_stats TO <bisync's role> on ${database}, or keep lookback longer than your longest transaction`,
    });
  }
  return warnings;
}
