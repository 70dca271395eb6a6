import { parse } from 'pg-connection-string';
import type { PlanStep, Side } from '../compiler/plan-types.js';
import { redact } from './connect.js';
import type { Databases } from './databases.js';

const SIDE = Symbol('bisync side');

/** Remember on which database (the step's source or target) an error happened; the first tag wins. */
export function tagSide(error: unknown, side: Side): void {
  if (typeof error === 'object' && error !== null && !(SIDE in error)) Object.defineProperty(error, SIDE, { value: side });
}

function sideOf(error: unknown): Side | undefined {
  return typeof error === 'object' && error !== null && SIDE in error ? ((error as Record<symbol, Side>)[SIDE] ?? undefined) : undefined;
}

/**
 * A step's error as its owner should read it: which database, and for a missing privilege, the
 * GRANT that would fix it. Never holds a password.
 */
export function describeStepError(error: unknown, step: PlanStep, dbs: Databases): string {
  const side = sideOf(error);
  const database = side === 'source' ? step.source : side === 'target' ? step.target : undefined;
  const raw = error instanceof Error ? error.message : String(error);
  let message = raw;
  for (const name of [step.source, step.target]) message = redact(message, dbs.database(name).url);
  if (database === undefined) return message;
  const code = (error as { code?: unknown }).code;
  if (code === '42501') {
    const role = parse(dbs.database(database).url).user ?? 'the role in the URL';
    return `on ${database}: ${message} (role "${role}"; ${grantNeeded(step, side ?? 'target', message, role)})`;
  }
  return `on ${database}: ${message}`;
}

/** The privilege a step needs on one side, phrased as the GRANT that gives it. */
function grantNeeded(step: PlanStep, side: Side, message: string, role: string): string {
  if (side === 'source') return `reading needs GRANT SELECT ON ${step.sourceRelation} TO "${role}"`;
  if (/for (schema|database)\b/.test(message)) {
    return `bisync's state needs GRANT USAGE, CREATE ON SCHEMA ${step.stateSchema} TO "${role}" (or CREATE on the database to create the schema)`;
  }
  const privileges = ['SELECT', 'INSERT', 'UPDATE', ...(step.deletes === 'mirror' ? ['DELETE'] : [])].join(', ');
  return `writing needs GRANT ${privileges} ON ${step.targetRelation} TO "${role}"`;
}
