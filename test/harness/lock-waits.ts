import pg from 'pg';
import { query } from './bisync.js';

/** Wait until `sql` on `url` returns a row (at most `polls` times; unbounded: the test's timeout bounds it). */
export async function until(url: string, sql: string, polls = Infinity): Promise<void> {
  for (let i = 0; i < polls; i++) {
    if ((await query(url, sql)).length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A waiting (not granted) lock of `mode` on bisync's state table. */
export const waiting = (mode: string): string => `SELECT 1 FROM pg_locks WHERE NOT granted AND mode = '${mode}' AND relation = 'bisync.state'::regclass`;

/** A session of its own on `url` (the caller ends it). */
export async function connected(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}
