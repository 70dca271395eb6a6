import type pg from 'pg';
import { stepKey } from '../compiler/compile-plan.js';
import type { StateSnapshot, XminCursor, XminState } from '../compiler/compile-plan.js';
import { renderSql } from '../compiler/render-sql.js';
import type { Direction } from '../config/types.js';
import type { StatePresence } from './bootstrap.js';

// Each read takes `present`, what checkState answered on this database in this transaction: a state
// table another role prepared could hold any watermark, or run its code when read, so it is refused
// (checkState throws, exit 2) before any of these is sent, never read.

/**
 * Watermarks in `<schema>.state` on one database; empty when bisync has not bootstrapped there yet.
 * `versions`, when given, gets when each step last committed (its row's updated_at). Read-only.
 */
export async function readWatermarks(
  client: pg.ClientBase,
  schema: string,
  direction: Direction,
  present: StatePresence,
  versions?: Record<string, string | null>,
): Promise<StateSnapshot> {
  if (!present.state) return {};
  const { sql, params } = renderSql('read-watermarks', { schema, direction });
  const result = await client.query<{ table_name: string; watermark: string | null; version: string | null }>(sql, params.map((p) => p.value));
  for (const r of result.rows) if (versions !== undefined) versions[stepKey(r.table_name, direction)] = r.version;
  return Object.fromEntries(result.rows.map((r) => [stepKey(r.table_name, direction), r.watermark]));
}

/** The snapshot each xmin step saved on its last run (SPEC §8), from `<schema>.state` on one database. Read-only. */
export async function readXminCursors(client: pg.ClientBase, schema: string, direction: Direction, present: StatePresence): Promise<XminState> {
  if (!present.state || !present.current) return {};
  const { sql, params } = renderSql('read-xmin-cursors', { schema, direction });
  const result = await client.query<{ table_name: string; xmin_cursor: XminCursor | null }>(sql, params.map((p) => p.value));
  const out: Record<string, XminCursor> = {};
  for (const r of result.rows) if (r.xmin_cursor !== null && typeof r.xmin_cursor.xmin === 'string') out[stepKey(r.table_name, direction)] = r.xmin_cursor;
  return out;
}

/** Rows in `<schema>.rejects` per step writing to this database (keyed by `stepKey`); empty before bootstrap. Read-only. */
export async function readPendingRejects(client: pg.ClientBase, schema: string, direction: Direction, present: StatePresence): Promise<Record<string, number>> {
  if (!present.rejects) return {};
  const { sql, params } = renderSql('read-pending-rejects', { schema, direction });
  const result = await client.query<{ table_name: string; pending: string }>(sql, params.map((p) => p.value));
  return Object.fromEntries(result.rows.map((r) => [stepKey(r.table_name, direction), Number(r.pending)]));
}

/**
 * Steps writing to this database that have not recorded in base which rows they wrote (state from
 * a bisync before base_tracked), keyed by `stepKey`; empty before bootstrap. Read-only.
 */
export async function readUntrackedBase(client: pg.ClientBase, schema: string, direction: Direction, present: StatePresence): Promise<string[]> {
  if (!present.state) return [];
  const { sql, params } = renderSql('read-untracked-base', { schema, direction });
  const result = await client.query<{ table_name: string }>(sql, params.map((p) => p.value));
  return result.rows.map((r) => stepKey(r.table_name, direction));
}
