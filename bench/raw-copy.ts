import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { SAMPLE_TABLES, sampleColumns } from '../test/fixtures/sample-dataset.js';

export interface RawCopyResult {
  rows: number;
  seconds: number;
}

const list = (names: readonly string[]): string => names.map((n) => pg.escapeIdentifier(n)).join(', ');

/**
 * The baseline: `COPY desktop_table (cols) TO STDOUT` piped into `COPY cloud_table (cols) FROM STDIN`,
 * one table after another in foreign-key order, into the empty cloud sample schema (same primary and
 * foreign keys bisync writes into, so the target pays the same checks). Desktop columns go to the
 * cloud table's matching columns (mbreminder.remdate → reminder.reminder_date); the cloud-only
 * columns take their defaults. Timed from opening the two connections to closing them.
 */
export async function rawCopy(desktopUrl: string, cloudUrl: string, tables: readonly string[]): Promise<RawCopyResult> {
  const started = process.hrtime.bigint();
  const source = new pg.Client({ connectionString: desktopUrl });
  const target = new pg.Client({ connectionString: cloudUrl });
  await Promise.all([source.connect(), target.connect()]);
  let rows = 0;
  try {
    for (const t of SAMPLE_TABLES) {
      if (!tables.includes(t.name)) continue;
      const columns = sampleColumns(t.name);
      const out = source.query(copyTo(`COPY public.${pg.escapeIdentifier(t.desktopTable)} (${list(columns.map((c) => c.desktop))}) TO STDOUT`));
      const into = target.query(copyFrom(`COPY public.${pg.escapeIdentifier(t.cloudTable)} (${list(columns.map((c) => c.cloud))}) FROM STDIN`));
      await pipeline(out, into);
      rows += Number(into.rowCount ?? 0);
    }
  } finally {
    await Promise.all([source.end(), target.end()]);
  }
  return { rows, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}
