import type pg from 'pg';
import type { PlanStatement, PlanStep, Side } from '../compiler/plan-types.js';
import { tagSide } from './step-error.js';

/** Find the statement of `kind` (the first on `side`, when given) in a step's plan. */
export function statement(step: PlanStep, kind: string, side?: Side, list: readonly PlanStatement[] = step.statements): PlanStatement {
  const found = list.find((s) => s.kind === kind && (side === undefined || s.side === side));
  if (found === undefined) throw new Error(`the plan of ${step.table} ${step.direction} has no ${kind} statement`);
  return found;
}

/** Parameter values in `$n` order: planned values as planned, runtime ones from `runtime` by name. */
export function values(s: PlanStatement, runtime: Readonly<Record<string, unknown>> = {}): unknown[] {
  return s.params.map((p) => {
    if (!p.runtime) return p.value;
    if (!(p.name in runtime)) throw new Error(`no value for the runtime parameter "${p.name}" of ${s.kind}`);
    return runtime[p.name];
  });
}

/** Run one planned statement exactly as planned; an error remembers which side it happened on. */
export async function run<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.ClientBase,
  s: PlanStatement,
  runtime: Readonly<Record<string, unknown>> = {},
): Promise<pg.QueryResult<R>> {
  const params = values(s, runtime);
  try {
    return params.length === 0 ? await client.query<R>(s.sql) : await client.query<R>(s.sql, params);
  } catch (error) {
    tagSide(error, s.side);
    throw error;
  }
}
