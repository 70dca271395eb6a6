import type { PlanStep } from '../compiler/plan-types.js';
import { isTransient } from './transient.js';

/** What a failed statement was about: one row's data, the connection or transaction, or the schema. */
export type ErrorClass = 'row' | 'connection' | 'schema';

/**
 * Classify a PostgreSQL error by what it is about (SPEC §2.6). Row-shaped errors are bisected down
 * to the rows that cause them and recorded as rejects; anything else fails the step.
 * - row: data exceptions (22), integrity violations (23, deferred ones included once checked per
 *   batch), a key given twice (21000), WITH CHECK OPTION (44000), an exception raised by user code
 *   such as a trigger (P0001, assert P0004), and a row refused by row-level security (42501) on a
 *   target where RLS applies to bisync's role;
 * - connection: what `isTransient` retries (connection loss, serialization failure, deadlock, …);
 * - schema: everything else (missing tables or columns, privileges, syntax).
 */
export function classifyError(error: unknown, step: PlanStep): ErrorClass {
  const code = (error as { code?: unknown }).code;
  const message = (error as { message?: unknown }).message;
  if (typeof code !== 'string') return isTransient(undefined, typeof message === 'string' ? message : undefined) ? 'connection' : 'schema';
  if (code.startsWith('22') || code.startsWith('23') || code === '21000' || code === '44000' || code === 'P0001' || code === 'P0004') return 'row';
  if (code === '42501' && step.targetRowSecurity) return 'row';
  if (isTransient(code, typeof message === 'string' ? message : undefined)) return 'connection';
  return 'schema';
}

/**
 * edits: both: a unique violation on bisync's own `<state>.base`. A step writes its source's copy
 * after its commit, under no lock, so a key the merge found missing from its target's copy may be
 * recorded there by another run's step meanwhile: a concurrent update, not this row's data. It is
 * reported as a serialization failure (40001), which apply runs again with a new snapshot.
 */
export function concurrentBaseWrite(error: unknown, step: PlanStep): Error | null {
  const e = error as { code?: unknown; schema?: unknown; table?: unknown };
  if (step.edits !== 'both' || e.code !== '23505' || e.schema !== step.stateSchema || e.table !== 'base') return null;
  return Object.assign(new Error(`another run recorded a key of ${step.stateSchema}.base while this step merged (${String((error as Error).message)}); the step was rolled back and is run again`), { code: '40001' });
}
