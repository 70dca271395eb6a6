import type pg from 'pg';
import { compileConflictsList, compileResolve, parseConflictKey } from '../compiler/compile-conflicts.js';
import type { ResolvedConfig } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import { checkState, stateCheckStatement } from '../executor/bootstrap.js';
import { pinSettings } from '../executor/read-only.js';
import { Databases } from '../executor/databases.js';
import { run } from '../executor/statements.js';
import { readCatalogs } from './validate.js';

/** One pending conflict of an edits: both table (SPEC §7), as `bisync conflicts` shows it. */
export interface PendingConflict {
  table: string;
  /** Key column → value (text), by the forward source's column names. */
  key: Record<string, string>;
  kind: string;
  /** Each database's version (null: the row is absent there), column → value. */
  versions: Record<string, Record<string, unknown> | null>;
  firstDetected: string;
  lastDetected: string;
  /** When both sides last agreed on this key (null: never). */
  baseAgreedAt: string | null;
  /** The key as the base stores it (text values in key order). */
  baseKey: string[];
}

export interface ConflictsReport {
  ok: boolean;
  conflicts: PendingConflict[];
  /** 0 when none are pending, 1 when any are. */
  exitCode: number;
}

interface ConflictRow {
  table_name: string;
  key: string[];
  kind: string;
  versions: Record<string, Record<string, unknown> | null>;
  first_detected: string;
  last_detected: string;
  base_agreed_at: string | null;
}

/**
 * `bisync conflicts`: the pending conflicts on both databases (each step records the ones it finds
 * on its target; the same key on both is one conflict, as last detected). Read-only; exit 1 when any.
 */
export async function listConflicts(config: ResolvedConfig, tables: readonly string[]): Promise<ConflictsReport> {
  const byKey = new Map<string, PendingConflict>();
  const dbs = new Databases(config);
  try {
    for (const { database, statement } of compileConflictsList(config, tables)) {
      await inTransaction(dbs, database, 'BEGIN TRANSACTION READ ONLY', async (client) => {
        if (!(await checkState(client, stateCheckStatement(config.stateSchema), database)).conflicts) return;
        for (const row of (await run<ConflictRow>(client, statement)).rows) {
          const id = `${row.table_name}\u0000${JSON.stringify(row.key)}`;
          const seen = byKey.get(id);
          if (seen !== undefined && seen.lastDetected >= row.last_detected) continue;
          const table = config.tables.find((t) => t.name === row.table_name);
          const names = table?.primaryKey.map((k) => k[config.forward.from] ?? '') ?? [];
          byKey.set(id, {
            table: row.table_name,
            key: Object.fromEntries(row.key.map((v, i) => [names[i] ?? String(i), v])),
            kind: row.kind,
            versions: Object.fromEntries(Object.keys(config.databases).map((db) => [db, row.versions[db] ?? null])),
            firstDetected: seen === undefined || row.first_detected < seen.firstDetected ? row.first_detected : seen.firstDetected,
            lastDetected: row.last_detected,
            baseAgreedAt: row.base_agreed_at,
            baseKey: row.key,
          });
        }
      });
    }
  } finally {
    await dbs.close();
  }
  // Config order of tables, then keys in natural order (so 2 comes before 10).
  const order = new Map(config.tables.map((t, i) => [t.name, i]));
  const conflicts = [...byKey.values()].sort(
    (a, b) => (order.get(a.table) ?? 0) - (order.get(b.table) ?? 0) || a.baseKey.join('\u0000').localeCompare(b.baseKey.join('\u0000'), 'en', { numeric: true }),
  );
  return { ok: conflicts.length === 0, conflicts, exitCode: conflicts.length === 0 ? ExitCode.ok : ExitCode.stepFailed };
}

export interface ResolveReport {
  ok: true;
  table: string;
  keep: string;
  /** The keys resolved, key column → value. */
  resolved: Record<string, string>[];
}

/**
 * `bisync resolve --table T (--key K | --all) --keep D`: write D's version (or its delete) to the
 * other database, record it as the new base on both and clear the conflict; one transaction per side.
 * A key without a pending conflict, or a --keep naming no database, is exit 2 with nothing written.
 */
export async function resolveConflicts(config: ResolvedConfig, tableName: string, key: string | null, keep: string): Promise<ResolveReport> {
  const { catalogs } = await readCatalogs(config);
  const plan = compileResolve(config, catalogs, tableName, keep);
  const pending = (await listConflicts(config, [plan.table])).conflicts;
  let chosen = pending;
  if (key !== null) {
    const wanted = JSON.stringify(parseConflictKey(key, plan.keyColumns[config.forward.from] ?? [], plan.table));
    chosen = pending.filter((c) => JSON.stringify(c.baseKey) === wanted);
    if (chosen.length === 0) {
      throw new BisyncError('RESOLVE_NO_CONFLICT', `table "${plan.table}" has no pending conflict with key ${key}`, {
        exitCode: ExitCode.usage,
        hint: `bisync conflicts --table ${plan.table} lists the pending ones`,
      });
    }
  }
  const dbs = new Databases(config);
  try {
    const keepClient = await dbs.client(plan.keep);
    const otherClient = await dbs.client(plan.other);
    try {
      for (const [client, database] of [[keepClient, plan.keep], [otherClient, plan.other]] as const) {
        await client.query('BEGIN');
        await pinSettings(client);
        await checkState(client, stateCheckStatement(config.stateSchema), database);
      }
      for (const conflict of chosen) {
        const keyJson = JSON.stringify(conflict.baseKey);
        const kept = (await run<{ row: unknown }>(keepClient, plan.read, { key: keyJson })).rows[0]?.row ?? null;
        const generationOf = async (client: pg.Client, database: string): Promise<number> => {
          const statement = plan.generation[database];
          if (statement === undefined) throw new Error(`no generation statement for ${database}`);
          return Number((await run<{ generation: string }>(client, statement, { key: keyJson })).rows[0]?.generation ?? 0);
        };
        const generation = Math.max(await generationOf(keepClient, plan.keep), await generationOf(otherClient, plan.other)) + 1;
        await run(otherClient, plan.write, { key: keyJson, 'kept row': kept === null ? null : JSON.stringify(kept) });
        for (const [client, database] of [[otherClient, plan.other], [keepClient, plan.keep]] as const) {
          const settle = plan.settle[database];
          if (settle === undefined) throw new Error(`no settle statement for ${database}`);
          await run(client, settle, { key: keyJson, generation });
        }
      }
      // The other side first: a crash before the kept side commits leaves its conflict parked with
      // both sides equal, which the next run clears by itself.
      await otherClient.query('COMMIT');
      await keepClient.query('COMMIT');
    } catch (error) {
      await otherClient.query('ROLLBACK').catch(() => undefined);
      await keepClient.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      await dbs.release(keepClient);
      await dbs.release(otherClient);
    }
  } finally {
    await dbs.close();
  }
  return { ok: true, table: plan.table, keep: plan.keep, resolved: chosen.map((c) => c.key) };
}

async function inTransaction(dbs: Databases, database: string, begin: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = await dbs.client(database);
  try {
    await client.query(begin);
    await pinSettings(client);
    await fn(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await dbs.release(client);
  }
}
