import type { Direction, ResolvedConfig } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import { selectTables } from './compile-plan.js';
import type { PlanStatement } from './plan-types.js';
import { renderSql } from './render-sql.js';

/** One statement of `bisync rejects` and the database (the steps' target) it runs on. */
export interface RejectsStatement {
  database: string;
  direction: Direction;
  statement: PlanStatement;
}

export type RejectsAction = 'retry' | 'discard';

function target(config: ResolvedConfig, direction: Direction): string {
  return direction === 'forward' ? config.forward.to : config.forward.from;
}

/** The read-only listing of pending rejects, per database written to. Pure. */
export function compileRejectsList(config: ResolvedConfig, tables: readonly string[]): RejectsStatement[] {
  const selected = selectTables(config, tables);
  return (['forward', 'reverse'] as const).flatMap((direction) => {
    const names = selected.filter((t) => t.directions.includes(direction)).map((t) => t.name);
    if (names.length === 0) return [];
    const { sql, params } = renderSql('rejects-list', { schema: config.stateSchema, direction, tables: JSON.stringify(names) });
    return [{ database: target(config, direction), direction, statement: { kind: 'rejects-list', side: 'target' as const, purpose: 'pending rejects', sql, params } }];
  });
}

/**
 * `retry` (attempts start over; the next run tries them) or `discard` (removed from rejects) for
 * one table's rejects: all of them, or the one with key `key` (a value for a one-column key, or a
 * JSON object `{"column": value, …}`). Pure.
 */
export function compileRejectsAction(
  config: ResolvedConfig,
  action: RejectsAction,
  tableName: string,
  key: string | null,
  direction: Direction | null,
): RejectsStatement[] {
  const [table] = selectTables(config, [tableName]);
  if (table === undefined) return [];
  const directions = table.directions.filter((d) => direction === null || d === direction);
  if (directions.length === 0) {
    throw new BisyncError('REJECTS_NO_STEP', `table "${table.name}" has no ${direction ?? ''} step`, {
      exitCode: ExitCode.usage,
      hint: `its steps: ${table.directions.join(', ')}`,
    });
  }
  return directions.map((d) => {
    const db = target(config, d);
    const columns = table.primaryKey.map((k) => k[db] ?? '');
    const keyJson = key === null ? null : JSON.stringify(parseKey(key, columns, table.name));
    const { sql, params } = renderSql(`rejects-${action}`, { schema: config.stateSchema, direction: d, table: table.name, byKey: keyJson !== null, key: keyJson });
    return { database: db, direction: d, statement: { kind: `rejects-${action}`, side: 'target' as const, purpose: `${action} rejects`, sql, params } };
  });
}

/** A key as rejects store it: key column → value as text. */
function parseKey(key: string, columns: readonly string[], table: string): Record<string, string> {
  const trimmed = key.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw keyError(key, columns, table, 'it starts with { but is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw keyError(key, columns, table, 'not a JSON object');
    const entries = Object.entries(parsed as Record<string, unknown>);
    const names = entries.map(([k]) => k);
    if (names.length !== columns.length || !columns.every((c) => names.includes(c))) {
      throw keyError(key, columns, table, `its columns are not the key columns (${columns.join(', ')})`);
    }
    return Object.fromEntries(columns.map((c) => [c, String((parsed as Record<string, unknown>)[c])]));
  }
  if (columns.length !== 1) throw keyError(key, columns, table, `the key has ${columns.length} columns`);
  return { [columns[0] ?? '']: key };
}

function keyError(key: string, columns: readonly string[], table: string, why: string): BisyncError {
  return new BisyncError('REJECTS_BAD_KEY', `--key ${key} does not name a row of "${table}": ${why}`, {
    exitCode: ExitCode.usage,
    hint: columns.length === 1 ? `give the value of ${columns[0] ?? ''}, e.g. --key 42` : `give a JSON object, e.g. --key '{${columns.map((c) => `"${c}": …`).join(', ')}}'`,
  });
}
