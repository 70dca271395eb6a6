import type pg from 'pg';
import type { PlanStatement, PlanStep } from '../compiler/plan-types.js';
import type { Databases } from './databases.js';
import { run, statement } from './statements.js';
import { wireSql } from '../compiler/wire-sql.js';

/** A safety guard refused the step (exit 4); the step is rolled back. */
export class GuardRefusal extends Error {}

/** One row of the guard-stats statement: this transaction's counters for one guarded table. */
export interface GuardStats {
  relation: number;
  deleted: string;
  updated: string;
  counted: boolean;
}

export interface GuardRow {
  snapshot?: string;
  relation: number;
  rows: string;
  fingerprint: string;
}

// What pg_export_snapshot() returns: hex virtual transaction id parts and a counter.
const SNAPSHOT_NAME = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/;

/**
 * SPEC §2.7, counted as what this step did: the rows the other side owns — on the target and on
 * every table a mirror delete can reach through foreign keys — are counted and fingerprinted
 * inside the step, in a snapshot it exports, and again on a second connection in that same
 * snapshot, where the step's uncommitted work is invisible. Other sessions' changes are in both
 * counts, so a phone deleting its own row meanwhile is not a refusal; a row the step itself (its
 * merge, its deletes, a trigger or foreign-key action they set off) removed or changed is. With
 * edits: both the merge itself writes and deletes the other side's rows by SPEC §7, so on the
 * target only the count is compared, less `deletedOnPurpose`.
 */
export async function guardOtherSideRows(
  target: pg.Client,
  step: PlanStep,
  dbs: Databases,
  stats: readonly GuardStats[],
  meant: { deleted: number; updated: number; deletedOnPurpose: number },
  baseline?: readonly GuardRow[],
): Promise<void> {
  if (onlyWhatWasMeant(step, stats, meant)) return;
  const deletedOnPurpose = meant.deletedOnPurpose;
  const [inside, outside] = step.statements.filter((s) => s.kind === 'guard-rows');
  const settings = step.statements.filter((s) => s.kind === 'settings' && s.side === 'target').at(-1);
  if (inside === undefined || outside === undefined || settings === undefined) throw new Error(`the plan of ${step.table} ${step.direction} has no guard`);
  let mine: GuardRow[];
  let theirs: readonly GuardRow[];
  if (baseline !== undefined) {
    mine = (await run<GuardRow>(target, outside)).rows;
    theirs = baseline;
  } else {
    mine = (await run<GuardRow>(target, inside)).rows;
    theirs = await countOutside(step, dbs, mine[0]?.snapshot ?? '', outside, settings);
  }
  for (const before of theirs) {
    const after = mine.find((m) => Number(m.relation) === Number(before.relation));
    const relation = step.guardedRelations[Number(before.relation)] ?? step.targetRelation;
    const where = relation === step.targetRelation ? step.target : `${step.target} (${relation}, reached through a foreign key)`;
    // With edits: both the merge deletes rows of the other side on purpose (the target only, counted).
    const allowed = Number(before.relation) === 0 ? deletedOnPurpose : 0;
    if (after === undefined || Number(after.rows) < Number(before.rows) - allowed) {
      throw new GuardRefusal(`rows on ${where} owned by the other side would drop from ${before.rows} to ${after?.rows ?? 0}; the step was rolled back`);
    }
    if (after.fingerprint !== before.fingerprint) {
      throw new GuardRefusal(`this step would change rows on ${where} owned by the other side (their fingerprint differs with and without the step's changes); the step was rolled back`);
    }
  }
}

/** The other side's rows in the exported snapshot, on a second connection, where the step's changes are invisible. */
async function countOutside(step: PlanStep, dbs: Databases, snapshot: string, outside: PlanStatement, settings: PlanStatement): Promise<GuardRow[]> {
  const client = await dbs.client(step.target);
  try {
    await run(client, statement(step, 'guard-begin'));
    await client.query(withSnapshot(statement(step, 'guard-import'), snapshot));
    await run(client, settings);
    const rows = (await run<GuardRow>(client, outside)).rows;
    await client.query('COMMIT');
    return rows;
  } finally {
    await dbs.release(client);
  }
}

/**
 * A dry run's steps share one transaction (dry-run.ts), where a snapshot cannot be exported (a
 * step is a savepoint) and no other connection sees the earlier steps' writes: the other side's
 * rows are counted in the step itself before it writes, and compared with the same count after.
 */
export async function guardBaseline(target: pg.Client, step: PlanStep): Promise<GuardRow[] | undefined> {
  const outside = step.statements.filter((s) => s.kind === 'guard-rows')[1];
  return outside === undefined ? undefined : (await run<GuardRow>(target, outside)).rows;
}

/**
 * The cheap check first (the guard-stats rows, run with save-state): this transaction's own delete and update counters for each guarded table
 * (pg_stat_get_xact_*, which include triggers and foreign-key actions, and no other session). The
 * step's statements only delete and update rows this direction owns, so when the counters are
 * exactly what they reported, nothing else was touched. Rolled-back attempts (bisection) and any
 * trigger or cascade make them differ, and the fingerprint check decides.
 */
function onlyWhatWasMeant(step: PlanStep, rows: readonly GuardStats[], meant: { deleted: number; updated: number }): boolean {
  return rows.length === step.guardedRelations.length && rows.every((r) => {
    const first = Number(r.relation) === 0;
    return r.counted && Number(r.deleted) === (first ? meant.deleted : 0) && Number(r.updated) === (first ? meant.updated : 0);
  });
}

/** The import statement with the exported snapshot's name as a literal (SET takes no parameter). */
function withSnapshot(s: PlanStatement, name: string): string {
  if (!SNAPSHOT_NAME.test(name)) throw new Error(`unexpected snapshot name from pg_export_snapshot(): ${JSON.stringify(name)}`);
  return wireSql(s.sql).replace(`'<exported snapshot>'`, `'${name}'`);
}
