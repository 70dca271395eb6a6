import type pg from 'pg';
import type { PlanStep } from '../compiler/plan-types.js';
import type { Databases } from './databases.js';
import { run, runTogether, statement } from './statements.js';

/** The forward step's lock, held on the source by a reverse step of an edits: both table. */
export interface PairLock {
  /** Commit the lock's transaction (it wrote nothing) and give the connection back. */
  release(): Promise<void>;
}

/**
 * edits: both: forward and reverse of one table run one at a time (SPEC §2.7, §7). A reverse step
 * locks, on its source, the state row the forward step locks there, before its own lock; both are
 * NOWAIT, so two runs never wait on each other (no deadlock): the one that comes second gets
 * `locked` (exit 3) and changes nothing. Null for steps without the pair lock, and for dry runs
 * (they write nothing, and the source may not have bisync's state yet).
 */
export async function takePairLock(step: PlanStep, dbs: Databases, dryRun: boolean): Promise<PairLock | 'locked' | null> {
  if (dryRun || !step.statements.some((s) => s.kind === 'pair-lock')) return null;
  const client = await dbs.client(step.source);
  let locked: pg.QueryResult | undefined;
  try {
    const part = step.statements.slice(step.statements.indexOf(statement(step, 'begin-pair-lock')));
    [, , locked] = await runTogether(client, [statement(step, 'begin-pair-lock'), statement(step, 'settings', 'source', part), statement(step, 'pair-lock')]);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    await dbs.release(client);
    if ((error as { code?: unknown }).code === '55P03') return 'locked';
    throw error;
  }
  if (locked?.rows[0]?.locked !== true) {
    await client.query('ROLLBACK').catch(() => undefined);
    await dbs.release(client);
    throw new Error(`the row of ${step.table} forward in ${step.stateSchema}.state is missing on ${step.source}; run apply again`);
  }
  return {
    release: async () => {
      try {
        // The step's last statement: the commit on the source that ends this transaction.
        await run(client, statement(step, 'commit', 'source', step.statements.slice(-1)));
      } catch {
        // Nothing was written in this transaction: a lost connection releases the lock all the same.
        await client.query('ROLLBACK').catch(() => undefined);
      } finally {
        await dbs.release(client);
      }
    },
  };
}

/** What a step that found the other direction running reports. */
export const PAIR_LOCKED = 'the forward step of this edits: both table is running in another run (forward and reverse of such a table run one at a time); nothing was changed, run again';

/** What an edits: both step whose own lock is held reports: that run may be this step's or the other direction's. */
export const PAIR_HELD = "another run holds this step's lock: the same step, or the other direction of this edits: both table (they run one at a time); nothing was changed, run again";
