import type pg from 'pg';
import { renderSql } from '../compiler/render-sql.js';
import { wireSql } from '../compiler/wire-sql.js';
import { together } from './statements.js';

// search_path pinned to pg_catalog, pg_temp, as settings.sql.hbs does in every step (the other
// settings stay the session's own: the catalog read records the database's own TimeZone).
const PIN = renderSql('pin-search-path', {});

// Run before the pin, so it must not resolve a name through the search_path: schema-qualified, a
// cast to a qualified type. It tells how the role's own sessions resolve an unqualified table name,
// which the config may use, and keeps that path for the rest of the transaction in a setting of
// its own (SESSION_PATH), where a read sent in the same round trip (the catalog read) finds it.
const SEARCH_PATH_SQL = "SELECT pg_catalog.set_config('bisync.session_path', pg_catalog.current_schemas(true)::pg_catalog.text, true)::pg_catalog.text[] AS path";

/** SQL for the session's own search path, as kept by the opening of a `readOnly` transaction (a text[]). */
export const SESSION_PATH = "pg_catalog.current_setting('bisync.session_path')::pg_catalog.text[]";

/** Pin search_path, as the first statement of a transaction just begun. */
export async function pinSettings(client: pg.ClientBase): Promise<void> {
  await client.query(wireSql(PIN.sql), PIN.params.map((p) => p.value));
}

/**
 * The statements that open a READ ONLY transaction pinned like every other bisync transaction, as
 * work for `together`: reads may follow them in the same round trip. The second answers the
 * schemas the session's own search_path would have searched, in order.
 */
export function openReadOnly(client: pg.ClientBase): [() => Promise<unknown>, () => Promise<pg.QueryResult<{ path: string[] }>>, () => Promise<void>] {
  return [
    async () => await client.query('BEGIN TRANSACTION READ ONLY'),
    async () => await client.query<{ path: string[] }>(SEARCH_PATH_SQL),
    async () => await pinSettings(client),
  ];
}

/**
 * Run `fn` in a READ ONLY transaction whose search_path is pinned like every other bisync
 * transaction; `fn` gets the schemas the session's own search_path would have searched, in order.
 */
export async function readOnly<T>(client: pg.ClientBase, fn: (searchPath: readonly string[]) => Promise<T>): Promise<T> {
  // Sent together: on a pipelined connection (databases.ts) one round trip, in this order.
  const opened = together(client, openReadOnly(client));
  try {
    const path = (await opened)[1].rows[0]?.path ?? [];
    const result = await fn(path);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
