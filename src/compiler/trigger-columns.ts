import type { CatalogTable, CatalogTrigger } from './catalog.js';

/** A column a BEFORE row trigger on the table may set, whatever value bisync writes into it. */
export interface TriggerWrite {
  readonly column: string;
  /** The trigger's name, with ` (on <partition>)` when it is declared on a partition or child. */
  readonly trigger: string;
  readonly onInsert: boolean;
  readonly onUpdate: boolean;
  /** The value is the clock (now(), CURRENT_TIMESTAMP, moddatetime): the column records the last write. */
  readonly clock: boolean;
}

export interface TriggerAnalysis {
  /** By column, in the order found (one entry per trigger that sets it). */
  readonly writes: readonly TriggerWrite[];
  /** Triggers whose function bisync cannot read (not plpgsql, not a known built-in): they may set anything. */
  readonly unread: readonly CatalogTrigger[];
}

// Trigger functions shipped with PostgreSQL (or its contrib modules) whose first argument names the
// column they set.
const ARGUMENT_WRITERS: Readonly<Record<string, { clock: boolean }>> = {
  tsvector_update_trigger: { clock: false },
  tsvector_update_trigger_column: { clock: false },
  moddatetime: { clock: true },
};
// Built-in trigger functions that never change the row.
const NO_WRITES = new Set(['suppress_redundant_updates_trigger']);

// `NEW.col := …` or `NEW.col = …` at the start of a plpgsql statement (after `;`, BEGIN, THEN,
// ELSE or LOOP), so a comparison such as `IF NEW.col = OLD.col` is not taken for an assignment.
const ASSIGNMENT = /(?:^|;|\bBEGIN\b|\bTHEN\b|\bELSE\b|\bLOOP\b)\s*NEW\s*\.\s*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*:?=(?![=>])([^;]*)/gi;
const CLOCK = /\b(?:now|clock_timestamp|statement_timestamp|transaction_timestamp)\s*\(|\b(?:current_timestamp|localtimestamp|current_date)\b/i;

/**
 * The columns BEFORE INSERT/UPDATE row triggers on `table` may set. plpgsql bodies are searched for
 * `NEW.<col> :=` / `NEW.<col> =` assignments (a practical reading, not a parser: a conditional
 * assignment counts too); tsvector_update_trigger and moddatetime are read from their arguments.
 * Pure.
 */
export function analyseTriggers(table: CatalogTable): TriggerAnalysis {
  const columns = new Set(table.columns.map((c) => c.name));
  const writes: TriggerWrite[] = [];
  const unread: CatalogTrigger[] = [];
  for (const trigger of table.triggers ?? []) {
    const label = trigger.declaredOn === null ? trigger.name : `${trigger.name} (on ${trigger.declaredOn})`;
    const add = (column: string, clock: boolean): void => {
      if (!columns.has(column) || writes.some((w) => w.column === column && w.trigger === label)) return;
      writes.push({ column, trigger: label, onInsert: trigger.onInsert, onUpdate: trigger.onUpdate, clock });
    };
    const fn = trigger.function.slice(trigger.function.lastIndexOf('.') + 1);
    const builtin = ARGUMENT_WRITERS[fn];
    if (trigger.language === 'plpgsql') {
      for (const match of withoutComments(trigger.source).matchAll(ASSIGNMENT)) {
        const raw = match[1] ?? '';
        const column = raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();
        add(column, CLOCK.test(match[2] ?? ''));
      }
    } else if (builtin !== undefined && (trigger.language === 'c' || trigger.language === 'internal')) {
      const column = trigger.args[0];
      if (column !== undefined) add(column, builtin.clock);
    } else if (!(NO_WRITES.has(fn) && trigger.language === 'internal')) {
      unread.push(trigger);
    }
  }
  return { writes, unread };
}

/** The columns of `writes`, each once, in the order found. */
export function writtenColumns(writes: readonly TriggerWrite[]): string[] {
  return [...new Set(writes.map((w) => w.column))];
}

/** `last_update (trigger last_updated, BEFORE UPDATE)`: what sets a column, for messages. */
export function describeWrites(column: string, writes: readonly TriggerWrite[]): string {
  const by = writes.filter((w) => w.column === column);
  const events = (w: TriggerWrite): string => `BEFORE ${[w.onInsert ? 'INSERT' : '', w.onUpdate ? 'UPDATE' : ''].filter((e) => e !== '').join(' OR ')}`;
  return `${column} (${by.map((w) => `trigger ${w.trigger}, ${events(w)}`).join('; ')})`;
}

function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/--[^\n]*/g, ' ');
}
