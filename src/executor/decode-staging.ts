import type pg from 'pg';
import type { PlanStep } from '../compiler/plan-types.js';
import { classifyError } from './error-class.js';
import { run, runTogether, statement } from './statements.js';

/** A staged row that could not be decoded into the target's encoding, with PostgreSQL's reason. */
export interface UndecodableRow {
  row: number;
  code: string;
  message: string;
}

/** Whether the step stages raw UTF-8 bytes (a single-byte target encoding, SPEC §2.6). */
export function stagesRaw(step: PlanStep): boolean {
  return step.statements.some((s) => s.kind === 'decode-staging');
}

/** Before the COPY: the target takes the COPY's bytes unconverted. */
export async function beforeRawCopy(target: pg.Client, step: PlanStep): Promise<void> {
  if (stagesRaw(step)) await run(target, statement(step, 'client-encoding-raw'));
}

/**
 * After the COPY: UTF-8 again, then staged rows 1..rows decoded into the target's encoding. A range
 * that fails on a row-shaped error is halved in savepoints until the row stands alone; that row is
 * marked (left out of the merge) and returned, to be recorded as a reject.
 */
export async function decodeStaging(target: pg.Client, step: PlanStep, rows: number): Promise<UndecodableRow[]> {
  if (!stagesRaw(step)) return [];
  await run(target, statement(step, 'client-encoding'));
  const found: UndecodableRow[] = [];
  await decodeRange(target, step, 1, rows, found);
  return found;
}

async function decodeRange(target: pg.Client, step: PlanStep, lo: number, hi: number, found: UndecodableRow[]): Promise<void> {
  if (lo > hi) return;
  try {
    await runTogether(target, [
      'SAVEPOINT bisync_decode',
      { statement: statement(step, 'decode-staging'), runtime: { 'first staged row': lo, 'last staged row': hi } },
      'RELEASE SAVEPOINT bisync_decode',
    ]);
  } catch (error) {
    if (classifyError(error, step) !== 'row') throw error;
    await target.query('ROLLBACK TO SAVEPOINT bisync_decode');
    await target.query('RELEASE SAVEPOINT bisync_decode');
    if (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      await decodeRange(target, step, lo, mid, found);
      await decodeRange(target, step, mid + 1, hi, found);
      return;
    }
    const failure = error as { code: string; message: string };
    found.push({ row: lo, code: failure.code, message: failure.message });
    await markUndecodable(target, step, lo);
  }
}

/** Mark one row; its key decoded when the key alone can be, else kept as octal bytes like the rest. */
async function markUndecodable(target: pg.Client, step: PlanStep, row: number): Promise<void> {
  try {
    await runTogether(target, ['SAVEPOINT bisync_decode', { statement: statement(step, 'undecodable-row'), runtime: { 'staged row': row } }, 'RELEASE SAVEPOINT bisync_decode']);
  } catch (error) {
    if (classifyError(error, step) !== 'row') throw error;
    await target.query('ROLLBACK TO SAVEPOINT bisync_decode');
    await target.query('RELEASE SAVEPOINT bisync_decode');
    await run(target, statement(step, 'undecodable-key'), { 'staged row': row });
  }
}
