import type pg from 'pg';
import type { PlanStep } from '../compiler/plan-types.js';
import { quoteIdent } from '../compiler/quote-ident.js';
import { run } from './statements.js';

/** Whether `<schema>.state` (with every column this bisync writes), `.runs` and `.rejects` all exist on this database. */
export async function stateExists(client: pg.ClientBase, schema: string): Promise<boolean> {
  const names = ['state', 'runs', 'rejects', 'base', 'conflicts'].map((t) => `${quoteIdent(schema)}.${quoteIdent(t)}`);
  const result = await client.query<{ missing: string }>(
    `SELECT count(*) FILTER (WHERE to_regclass(n) IS NULL)::int
            + (SELECT count(*) FROM (VALUES ('xmin_cursor')) AS c(name)
                WHERE to_regclass($2) IS NULL
                   OR NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = to_regclass($2) AND a.attname = c.name AND NOT a.attisdropped))::int AS missing
       FROM unnest($1::text[]) AS n`,
    [names, names[0]],
  );
  return Number(result.rows[0]?.missing ?? 1) === 0;
}

/**
 * Create bisync's state on the step's target if it is missing: idempotent, and race-free because
 * concurrent bootstraps serialise on a transaction advisory lock before CREATE … IF NOT EXISTS.
 */
export async function bootstrapState(client: pg.ClientBase, step: PlanStep, schema: string): Promise<boolean> {
  if (await stateExists(client, schema)) return false;
  try {
    for (const s of step.bootstrap) await run(client, s);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return true;
}
