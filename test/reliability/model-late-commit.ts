import pg from 'pg';
import type { Data, Model, TableName } from './model-state.js';

/**
 * A mobile insert in a transaction that starts before other writes and commits late, during a
 * later sync step: its cursor (now() = the transaction's start) is older than rows that committed
 * and were read before it (SPEC §2.3, seed 000). Only with the server clock: with generated
 * timestamps a late row could carry any time, and no lookback can promise to catch that.
 */

/** Late rows use keys outside KEY_SPACE, so no other write ever waits on their uncommitted key. */
const LATE_KEY_BASE = 100;

export interface LateCommit {
  table: TableName;
  key: number;
  /** The row's cursor in µs, which is also the transaction's start. */
  cursor: number;
  /** Commit, and only then let the model see the row. */
  commit(): Promise<void>;
  /** Roll back if still open and disconnect (after a failure). */
  close(): Promise<void>;
}

export async function beginLateCommit(
  cloudUrl: string,
  model: Model,
  wanted: { table: TableName; text: string; status: string | null; parentPick: number },
): Promise<LateCommit | undefined> {
  const parents = [...model.cloud.client.keys()].reverse();
  const table: TableName = wanted.table === 'job' && parents.length > 0 ? 'job' : 'client';
  const key = LATE_KEY_BASE + [...model.written[table]].filter((k) => k >= LATE_KEY_BASE).length;
  const parent = parents[wanted.parentPick % Math.max(1, parents.length)];
  const data: Data = table === 'client' ? { name: wanted.text } : { client_id: parent ?? null, title: wanted.text, status: wanted.status };
  const client = new pg.Client({ connectionString: cloudUrl });
  await client.connect();
  let open = false;
  try {
    await client.query('BEGIN');
    open = true;
    const cursorSql = `(extract(epoch FROM greatest(created_at, updated_at)) * 1000000)::bigint::text AS cursor`;
    const inserted =
      table === 'client'
        ? await client.query<{ cursor: string }>(`INSERT INTO client (client_id, name, source) VALUES ($1, $2, 'M') RETURNING ${cursorSql}`, [key, data.name])
        : await client.query<{ cursor: string }>(
            `INSERT INTO job (job_id, client_id, title, status, source) VALUES ($1, $2, $3, $4, 'M') RETURNING ${cursorSql}`,
            [key, data.client_id, data.title, data.status],
          );
    const cursor = Number(inserted.rows[0]?.cursor);
    return {
      table,
      key,
      cursor,
      async commit() {
        await client.query('COMMIT');
        open = false;
        model.cloud[table].set(key, { data, source: 'M', cursor });
        model.written[table].add(key);
        await client.end();
      },
      async close() {
        if (open) await client.query('ROLLBACK').catch(() => undefined);
        open = false;
        await client.end().catch(() => undefined);
      },
    };
  } catch (error) {
    if (open) await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
    throw error;
  }
}
