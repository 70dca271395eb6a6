import type pg from 'pg';
import { compileRejectsAction, compileRejectsList } from '../compiler/compile-rejects.js';
import type { RejectsAction, RejectsStatement } from '../compiler/compile-rejects.js';
import type { Direction, ResolvedConfig } from '../config/types.js';
import { ExitCode } from '../errors.js';
import { checkState, stateCheckStatement } from '../executor/bootstrap.js';
import { Databases } from '../executor/databases.js';
import { pinSettings } from '../executor/read-only.js';
import { run } from '../executor/statements.js';

/** One row a step's target refused (or an insert-only conflict), as `bisync rejects` shows it. */
export interface PendingReject {
  table: string;
  direction: Direction;
  /** The database the row could not be written to. */
  database: string;
  /** `error` (the target refused the row) or `conflict` (insert-only met a different row). */
  reason: string;
  /** Key column → value, as text. */
  key: Record<string, string>;
  errorCode: string | null;
  error: string | null;
  /** Times tried (0 after `bisync rejects retry`, until the next run). */
  attempts: number;
  firstSeen: string;
  lastTried: string;
  /** The row as read from the source, column → value as text. */
  row: Record<string, string | null>;
}

export interface RejectsReport {
  /** True when no rejects are pending. */
  ok: boolean;
  rejects: PendingReject[];
  /** 0 when none are pending, 1 when any are. */
  exitCode: number;
}

export interface RejectsActionReport {
  ok: true;
  action: RejectsAction;
  /** The rejects the action touched. */
  rows: { table: string; direction: Direction; database: string; key: Record<string, string> }[];
}

interface RejectRow {
  table_name: string;
  direction: Direction;
  reason: string;
  key: Record<string, string>;
  error_code: string | null;
  error: string | null;
  attempts: number;
  first_seen: string;
  last_tried: string;
  row_data: Record<string, string | null>;
}

/** `bisync rejects`: the pending rejects of every (selected) step, read-only. Exit 1 when any. */
export async function listRejects(config: ResolvedConfig, tables: readonly string[]): Promise<RejectsReport> {
  const statements = compileRejectsList(config, tables);
  const rejects: PendingReject[] = [];
  await onEach(config, statements, 'BEGIN TRANSACTION READ ONLY', async (client, { database, statement }) => {
    for (const r of (await run<RejectRow>(client, statement)).rows) {
      rejects.push({
        table: r.table_name,
        direction: r.direction,
        database,
        reason: r.reason,
        key: r.key,
        errorCode: r.error_code,
        error: r.error,
        attempts: r.attempts,
        firstSeen: r.first_seen,
        lastTried: r.last_tried,
        row: r.row_data,
      });
    }
  });
  return { ok: rejects.length === 0, rejects, exitCode: rejects.length === 0 ? ExitCode.ok : ExitCode.stepFailed };
}

/** `bisync rejects retry|discard --table T (--key K | --all)`: one transaction per database. */
export async function actOnRejects(
  config: ResolvedConfig,
  action: RejectsAction,
  table: string,
  key: string | null,
  direction: Direction | null,
): Promise<RejectsActionReport> {
  const statements = compileRejectsAction(config, action, table, key, direction);
  const rows: RejectsActionReport['rows'] = [];
  await onEach(config, statements, 'BEGIN', async (client, { database, statement }) => {
    for (const r of (await run<{ table_name: string; direction: Direction; key: Record<string, string> }>(client, statement)).rows) {
      rows.push({ table: r.table_name, direction: r.direction, database, key: r.key });
    }
  });
  return { ok: true, action, rows };
}

/** Run each statement in its own transaction on its database; a database without state has no rejects. */
async function onEach(
  config: ResolvedConfig,
  statements: readonly RejectsStatement[],
  begin: string,
  fn: (client: pg.Client, s: RejectsStatement) => Promise<void>,
): Promise<void> {
  const dbs = new Databases(config);
  try {
    for (const s of statements) {
      const client = await dbs.client(s.database);
      try {
        await client.query(begin);
        await pinSettings(client);
        if ((await checkState(client, stateCheckStatement(config.stateSchema), s.database)).rejects) await fn(client, s);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        await dbs.release(client);
      }
    }
  } finally {
    await dbs.close();
  }
}
