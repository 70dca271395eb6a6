import { sha256 } from '../sha256.js';
import type { Catalog } from './catalog.js';
import type { StateSnapshot, XminState } from './compile-plan.js';
import type { Plan } from './plan-types.js';

/**
 * What a saved plan (`plan --out`) was compiled from, so `apply --plan` can tell that nothing
 * changed since: the compiled steps themselves (every statement and parameter, watermarks
 * included, and what the executor reads from a step such as max_delete_fraction), each planned
 * table's catalog on each database, and the state each step starts from.
 */
export interface PlanFingerprint {
  /** sha256 over the plan's steps and unplanned steps as JSON. */
  readonly steps: string;
  /** `<database> <table>` → sha256 of that table's catalog there (`missing` when it does not exist). */
  readonly tables: Readonly<Record<string, string>>;
  /** Database → its server version and default TimeZone. */
  readonly databases: Readonly<Record<string, string>>;
  /** `<table>/<direction> <what>` → the step's watermark, pending rejects and xmin cursor, as text. */
  readonly state: Readonly<Record<string, string>>;
}

/** The fingerprint of `plan` and what it was compiled from. Pure; the server's clock and transaction ids are left out. */
export function planFingerprint(
  plan: Plan,
  catalogs: Readonly<Record<string, Catalog>>,
  state: StateSnapshot,
  xmin: XminState,
  pendingRejects: Readonly<Record<string, number>>,
): PlanFingerprint {
  const names = [...new Set([...plan.steps.map((s) => s.table), ...(plan.unplanned ?? []).map((u) => u.table)])].sort();
  const tables: Record<string, string> = {};
  const databases: Record<string, string> = {};
  for (const [database, catalog] of Object.entries(catalogs).sort(([a], [b]) => (a < b ? -1 : 1))) {
    databases[database] = `PostgreSQL ${catalog.serverVersion}, TimeZone ${catalog.timeZone}`;
    for (const name of names) {
      const table = catalog.tables[name];
      tables[`${database} ${name}`] = table === null || table === undefined ? 'missing' : sha256(JSON.stringify(table));
    }
  }
  const steps = [...plan.steps.map((s) => `${s.table}/${s.direction}`), ...(plan.unplanned ?? []).map((u) => `${u.table}/${u.direction}`)].sort();
  const stateOf: Record<string, string> = {};
  for (const key of steps) {
    stateOf[`${key} watermark`] = state[key] ?? 'none';
    stateOf[`${key} pending rejects`] = String(pendingRejects[key] ?? 0);
    if (xmin[key] !== undefined) stateOf[`${key} xmin cursor`] = JSON.stringify(xmin[key]);
  }
  return { steps: sha256(JSON.stringify({ steps: plan.steps, unplanned: plan.unplanned ?? [] })), tables, databases, state: stateOf };
}

/** What differs between a saved fingerprint and the one compiled now, one sentence each (empty: nothing). */
export function fingerprintChanges(saved: PlanFingerprint, now: PlanFingerprint): string[] {
  const changes: string[] = [];
  const compare = (what: Readonly<Record<string, string>>, current: Readonly<Record<string, string>>, say: (key: string, was: string | undefined, is: string | undefined) => string): void => {
    for (const key of [...new Set([...Object.keys(what), ...Object.keys(current)])].sort()) {
      if (what[key] !== current[key]) changes.push(say(key, what[key], current[key]));
    }
  };
  compare(saved.databases, now.databases, (db, was, is) => `database ${db}: was ${was ?? 'not in the plan'}, is ${is ?? 'not in the config'}`);
  compare(saved.tables, now.tables, (key, was, is) => {
    const [db, table] = key.split(' ');
    if (was === undefined) return `table "${table}" on ${db} is not in the saved plan`;
    if (is === undefined) return `table "${table}" on ${db} is no longer planned`;
    if (is === 'missing') return `table "${table}" no longer exists on ${db}`;
    return was === 'missing' ? `table "${table}" now exists on ${db}` : `table "${table}" changed on ${db} (its columns, keys, constraints, triggers or privileges)`;
  });
  compare(saved.state, now.state, (key, was, is) => `${key.replace('/', ' ').replace(/^(\S+ \S+) /, '$1: ')} was ${was ?? 'not planned'}, is ${is ?? 'not planned'}`);
  if (changes.length === 0 && saved.steps !== now.steps) changes.push('the compiled statements differ (the config changed)');
  return changes;
}
