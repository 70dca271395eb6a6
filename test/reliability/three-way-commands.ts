import fc from 'fast-check';
import type pg from 'pg';
import type { History, Row, Side, TableName } from './three-way-history.js';
import { KEYS, keyColumn } from './three-way-history.js';

/**
 * Commands of the edits: both model test as plain data (fast-check prints and shrinks them), their
 * generators, and how a person's write is carried out on one database and in the history.
 */

export interface Write {
  kind: 'write';
  side: Side;
  op: 'insert' | 'update' | 'delete';
  table: TableName;
  /** Which key, modulo the candidates when the write runs. */
  pick: number;
  text: string;
  status: string | null;
}

export interface Run {
  kind: 'run';
  direction: 'forward' | 'reverse' | 'both';
  tables: 'all' | TableName;
  mode: 'auto' | 'full';
  /** Writes that land between the read and the merge of the `at`-th step (modulo the steps run). */
  during: { at: number; writes: Write[] } | null;
  /** The step (modulo the steps run) killed after its read: it rolls back, the steps before it stand. */
  killAt: number | null;
  dryRun: boolean;
  concurrency: 1 | 2;
}

/** `bisync resolve --table T --all --keep <side>`. */
export interface Resolve {
  kind: 'resolve';
  table: TableName;
  keep: Side;
}

/** A quiescent `apply --mode full`, then the convergence check. */
export interface Settle {
  kind: 'settle';
}

export type Command = Write | Run | Resolve | Settle;

// Text COPY's text format must escape (tab, newline, backslash, a literal \N), quotes and non-ASCII.
const textArb = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '\n', '\\', 'N', 'é', '"', "'", ','), maxLength: 4 });

const writeArb: fc.Arbitrary<Write> = fc.record({
  kind: fc.constant<'write'>('write'),
  side: fc.constantFrom<Side>('desktop', 'cloud'),
  op: fc.constantFrom<Write['op']>('insert', 'insert', 'update', 'update', 'update', 'delete'),
  table: fc.constantFrom<TableName>('note', 'job'),
  pick: fc.nat(20),
  text: textArb,
  status: fc.constantFrom<string | null>('open', 'done', '', null),
});

const runArb: fc.Arbitrary<Run> = fc.record({
  kind: fc.constant<'run'>('run'),
  direction: fc.constantFrom<Run['direction']>('forward', 'reverse', 'both', 'both'),
  tables: fc.constantFrom<Run['tables']>('all', 'all', 'note', 'job'),
  mode: fc.constantFrom<Run['mode']>('auto', 'auto', 'full'),
  during: fc.option(fc.record({ at: fc.nat(3), writes: fc.array(writeArb, { minLength: 1, maxLength: 3 }) }), { freq: 3 }),
  killAt: fc.option(fc.nat(3), { freq: 4 }),
  dryRun: fc.constantFrom(false, false, false, false, false, false, true),
  concurrency: fc.constantFrom<1 | 2>(1, 2),
});

const resolveArb: fc.Arbitrary<Resolve> = fc.record({
  kind: fc.constant<'resolve'>('resolve'),
  table: fc.constantFrom<TableName>('note', 'job'),
  keep: fc.constantFrom<Side>('desktop', 'cloud'),
});

/** Scenarios: mostly writes and runs, now and then a resolve or a settle. */
export function commandsArb(meanCommands: number): fc.Arbitrary<Command[]> {
  return fc.array(
    fc.oneof(
      { arbitrary: writeArb as fc.Arbitrary<Command>, weight: 6 },
      { arbitrary: runArb, weight: 4 },
      { arbitrary: resolveArb, weight: 1 },
      { arbitrary: fc.constant<Settle>({ kind: 'settle' }), weight: 1 },
    ),
    { minLength: Math.max(1, Math.floor(meanCommands / 2)), maxLength: meanCommands * 2 - 1 },
  );
}

const STATUS_COLUMN: Readonly<Record<TableName, string>> = { note: 'tag', job: 'status' };
const TEXT_COLUMN: Readonly<Record<TableName, string>> = { note: 'body', job: 'title' };

/**
 * Carry out one write on its database and record it: an insert takes a key free on that side
 * (never written, or deleted), an update or delete a key that side holds; a write with nothing to
 * act on becomes the other kind. Returns what it did, for the failure report.
 */
export async function performWrite(clients: Record<Side, pg.Client>, held: Map<number, Row>, history: History, write: Write): Promise<string> {
  const { side, table } = write;
  const taken = [...held.keys()].sort((a, b) => a - b);
  const free: number[] = [];
  for (let k = 1; k <= KEYS; k++) if (!held.has(k)) free.push(k);
  let op = write.op;
  if (op === 'insert' && free.length === 0) op = 'update';
  if (op !== 'insert' && taken.length === 0) op = 'insert';
  const candidates = op === 'insert' ? free : taken;
  const key = candidates[write.pick % candidates.length] as number;
  const id = keyColumn(table);
  const client = clients[side];
  // The cloud's own app marks its rows (the origin column); the desktop has none.
  const origin = side === 'cloud' ? ', source' : '';
  const originValue = side === 'cloud' ? ", 'M'" : '';
  if (op === 'delete') {
    const done = await client.query(`DELETE FROM ${table} WHERE ${id} = $1`, [key]);
    if (done.rowCount !== 1) throw new Error(`${side} delete of ${table} ${key} touched ${done.rowCount} rows`);
    history.record(table, key, side, null, held.get(key));
    held.delete(key);
    return `${side} deleted ${table} ${key}`;
  }
  const row: Row = { text: history.freshText(side, write.text), status: write.status };
  const sql =
    op === 'insert'
      ? `INSERT INTO ${table} (${id}, ${TEXT_COLUMN[table]}, ${STATUS_COLUMN[table]}${origin}) VALUES ($1, $2, $3${originValue})`
      : `UPDATE ${table} SET ${TEXT_COLUMN[table]} = $2, ${STATUS_COLUMN[table]} = $3 WHERE ${id} = $1`;
  const done = await client.query(sql, [key, row.text, row.status]);
  if (done.rowCount !== 1) throw new Error(`${side} ${op} of ${table} ${key} touched ${done.rowCount} rows`);
  history.record(table, key, side, row, op === 'insert' ? undefined : held.get(key));
  held.set(key, row);
  return `${side} ${op === 'insert' ? 'inserted' : 'updated'} ${table} ${key} ${JSON.stringify(row)}`;
}
