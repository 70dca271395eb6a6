import type pg from 'pg';
import type { PlanStatement, PlanStep, Side } from '../compiler/plan-types.js';
import { tagSide } from './step-error.js';
import { wireSql } from '../compiler/wire-sql.js';

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
    // Without comments and layout: the same statement in fewer bytes (wire-sql.ts).
    const sql = wireSql(s.sql);
    return params.length === 0 ? await client.query<R>(sql) : await client.query<R>(sql, params);
  } catch (error) {
    tagSide(error, s.side);
    throw error;
  }
}

/** A planned statement with its runtime values, or a fixed statement the executor adds (SAVEPOINT …). */
export type Sendable = PlanStatement | { readonly statement: PlanStatement; readonly runtime: Readonly<Record<string, unknown>> } | string;

/**
 * Run statements in order without waiting for each answer before sending the next: on a
 * connection in pipeline mode they travel together, one round trip (SPEC §8). Only for statements
 * that need no result of the ones before them. What runs, and in which order, is unchanged: the
 * server executes them one after another. Waits for every answer, then returns the results in
 * order, or throws the first error (statements after a failed one in a transaction fail too).
 */
export async function runTogether(client: pg.ClientBase, list: readonly Sendable[]): Promise<pg.QueryResult[]> {
  const sent = list.map((item) =>
    typeof item === 'string' ? client.query(item) : 'sql' in item ? run(client, item) : run(client, item.statement, item.runtime),
  );
  const settled = await Promise.allSettled(sent);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<pg.QueryResult>).value);
}

/**
 * Start each piece of work at once on a pipelined connection (databases.ts: its queries then travel
 * together), or one after the other on a plain one (node-postgres warns about queries sent while
 * another runs). Results in order; the first error is thrown.
 */
export async function together<T extends readonly unknown[]>(client: pg.ClientBase, work: { readonly [K in keyof T]: () => Promise<T[K]> }): Promise<T> {
  const list = work as readonly (() => Promise<unknown>)[];
  if ((client as unknown as { pipeline?: boolean }).pipeline === true) return (await Promise.all(list.map(async (w) => await w()))) as unknown as T;
  const out: unknown[] = [];
  for (const w of list) out.push(await w());
  return out as unknown as T;
}
