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
 * columns whose role cannot see other sessions' transaction starts, so the late-commit clamp only
 * has pg_locks to go by.
 */
export function sessionWarnings(config: ResolvedConfig, catalogs: Readonly<Record<string, Catalog>>): SessionWarning[] {
  const warnings: SessionWarning[] = [];
  for (const [database, catalog] of Object.entries(catalogs)) {
    if (catalog.seesOtherSessions) continue;
    const readByCursor = config.tables.filter((t) => t.directions.some((d) => (d === 'forward' ? config.forward.from : config.forward.to) === database) && (t.timestamps[database] ?? []).length > 0);
    if (readByCursor.length === 0) continue;
    warnings.push({
      database,
      message:
        `the role cannot see other sessions' transaction starts (pg_stat_activity.xact_start), so the late-commit clamp on ${database} ` +
        `cannot keep the watermark below a transaction that started before a run and writes after it (tables ${readByCursor.map((t) => t.name).join(', ')}); ` +
        'it still holds the watermark while a transaction with uncommitted writes to the table is open',
      hint: `GRANT pg_read_all_stats TO <bisync's role> on ${database}, or keep lookback longer than your longest transaction`,
    });
  }
  return warnings;
}
