import type pg from 'pg';
import { stepKey } from '../compiler/compile-plan.js';
import type { StateSnapshot, XminCursor, XminState } from '../compiler/compile-plan.js';
import { quoteIdent } from '../compiler/quote-ident.js';
import { renderSql } from '../compiler/render-sql.js';
import type { Direction } from '../config/types.js';

/** Watermarks in `<schema>.state` on one database; empty when bisync has not bootstrapped there yet. Read-only. */
export async function readWatermarks(client: pg.ClientBase, schema: string, direction: Direction): Promise<StateSnapshot> {
  const exists = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    `${quoteIdent(schema)}.state`,
  ]);
  if (exists.rows[0]?.present !== true) return {};
  const { sql, params } = renderSql('read-watermarks', { schema, direction });
  const result = await client.query<{ table_name: string; watermark: string | null }>(sql, params.map((p) => p.value));
  return Object.fromEntries(result.rows.map((r) => [stepKey(r.table_name, direction), r.watermark]));
}

/** The snapshot each xmin step saved on its last run (SPEC §8), from `<schema>.state` on one database. Read-only. */
export async function readXminCursors(client: pg.ClientBase, schema: string, direction: Direction): Promise<XminState> {
  const exists = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${quoteIdent(schema)}.state`]);
  if (exists.rows[0]?.present !== true) return {};
  const { sql, params } = renderSql('read-xmin-cursors', { schema, direction });
  const result = await client.query<{ table_name: string; xmin_cursor: XminCursor | null }>(sql, params.map((p) => p.value));
  const out: Record<string, XminCursor> = {};
  for (const r of result.rows) if (r.xmin_cursor !== null && typeof r.xmin_cursor.xmin === 'string') out[stepKey(r.table_name, direction)] = r.xmin_cursor;
  return out;
}
