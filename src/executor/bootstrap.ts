import type pg from 'pg';
import type { PlanStatement, PlanStep } from '../compiler/plan-types.js';
import { renderSql } from '../compiler/render-sql.js';
import { BisyncError, ExitCode } from '../errors.js';
import { run, runTogether, statement } from './statements.js';

const STATE_TABLES = ['state', 'runs', 'rejects', 'base', 'conflicts'] as const;

interface CheckRow {
  schema_exists: boolean;
  schema_owner: string | null;
  schema_mine: boolean;
  me: string;
  state_current: boolean;
  tables: { name: string; exists: boolean; kind: string | null; owner: string | null; mine: boolean; triggers: number; rules: number }[];
}

/** The check-state statement for read-only commands (apply runs the one its plan prints). */
export function stateCheckStatement(schema: string): PlanStatement {
  const { sql, params } = renderSql('check-state', { schema });
  return { kind: 'check-state', side: 'target', purpose: "who owns bisync's state schema", sql, params };
}

/**
 * Check bisync's state schema on `database` before anything uses it: what exists must belong to
 * the connecting role (or a role it is a member of) and be plain tables without triggers or rules.
 * Throws an exit-2 error naming every problem; returns which of its tables exist.
 */
export async function checkState(client: pg.ClientBase, check: PlanStatement, database: string): Promise<StatePresence> {
  return presenceOf((await run<CheckRow>(client, check)).rows[0], check, database);
}

/** What a check-state row says (see checkState). */
function presenceOf(row: CheckRow | undefined, check: PlanStatement, database: string): StatePresence {
  const schema = String(check.params[0]?.value ?? '');
  const present: StatePresence = { state: false, runs: false, rejects: false, base: false, conflicts: false, current: false };
  if (row === undefined || !row.schema_exists) return present;
  const problems: string[] = [];
  if (!row.schema_mine) problems.push(`schema "${schema}" is owned by role "${row.schema_owner ?? '?'}"`);
  for (const t of row.tables) {
    if (!t.exists) continue;
    present[t.name as keyof typeof present] = true;
    const name = `${schema}.${t.name}`;
    if (t.kind !== 'r') problems.push(`${name} is not a plain table (relkind ${t.kind ?? '?'})`);
    if (!t.mine) problems.push(`${name} is owned by role "${t.owner ?? '?'}"`);
    if (Number(t.triggers) > 0) problems.push(`${name} has ${t.triggers} trigger${Number(t.triggers) === 1 ? '' : 's'}`);
    if (Number(t.rules) > 0) problems.push(`${name} has ${t.rules} rule${Number(t.rules) === 1 ? '' : 's'}`);
  }
  if (problems.length > 0) {
    throw new BisyncError(
      'STATE_UNTRUSTED',
      `bisync's state schema on ${database} was not made by role "${row.me}" (or a role it is a member of): ${problems.join('; ')}`,
      {
        exitCode: ExitCode.usage,
        hint: `another role may have prepared it to run its code with bisync's privileges: inspect schema "${schema}", drop it, and let bisync create it again; or set state: schema: to a schema this role owns`,
      },
    );
  }
  present.current = row.state_current;
  return present;
}

/** Which state tables exist; `current`: state has every column this bisync writes. */
export type StatePresence = Record<(typeof STATE_TABLES)[number] | 'current', boolean>;

/** Whether all state tables exist with every column this bisync writes (and are trusted: see checkState). */
export function complete(present: StatePresence): boolean {
  return present.current && STATE_TABLES.every((t) => present[t]);
}

/**
 * Create bisync's state on the step's target if it is missing: idempotent, and race-free because
 * concurrent bootstraps serialise on a transaction advisory lock before CREATE … IF NOT EXISTS.
 * What exists (before and after) is checked first: a schema another role prepared is refused.
 * Then the `claims` (claim-state-row of each step writing to this database) run, in the same
 * transaction: the rows the steps lock.
 */
export async function bootstrapState(client: pg.ClientBase, step: PlanStep, database: string = step.target, claims: readonly PlanStatement[] = []): Promise<boolean> {
  const list = step.bootstrap;
  const check = statement(step, 'check-state', 'target', list);
  let created = false;
  try {
    // The opening travels together (one round trip over a pipelined connection), and so do the
    // claims with the commit: a run that finds its state in place costs two.
    const opened = await runTogether(client, [statement(step, 'begin-target', 'target', list), statement(step, 'settings', 'target', list), check]);
    if (!complete(presenceOf(opened[2]?.rows[0] as CheckRow | undefined, check, database))) {
      await run(client, statement(step, 'bootstrap-lock', 'target', list));
      await run(client, statement(step, 'bootstrap', 'target', list));
      // CREATE … IF NOT EXISTS accepts a schema someone created in the meantime: check again.
      await checkState(client, check, database);
      created = true;
    }
    // Every step's row of state exists (committed) before any step locks it.
    await runTogether(client, [...claims, statement(step, 'commit', 'target', list)]);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return created;
}
