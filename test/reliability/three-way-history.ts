import type pg from 'pg';

/**
 * The model of the edits: both property test (issue 10). It does not predict what bisync writes:
 * it records every write each side made (a history per key, in the order they happened) and checks
 * what the databases hold against it. Every write stores a value no earlier write stored (its
 * text starts with a unique token), so each row on either side names the write it came from.
 */

export type Side = 'desktop' | 'cloud';
export type TableName = 'note' | 'job';
export const SIDES: readonly Side[] = ['desktop', 'cloud'];
export const TABLES: readonly TableName[] = ['note', 'job'];
/** Keys 1..KEYS: small, so both sides often write the same key between two runs. */
export const KEYS = 6;

/** The synced values of a row as the test compares them (the cursor column is left out). */
export interface Row {
  text: string;
  status: string | null;
}

/** One write by a person (or a resolve they chose): a row, or a delete (null). */
export interface Event {
  side: Side;
  seq: number;
  row: Row | null;
  lineage: number;
}

/** Key → row, per table, as one database holds it. */
export type SideRows = Record<TableName, Map<number, Row>>;
export type Holdings = Record<Side, SideRows>;

const TEXT: Readonly<Record<TableName, string>> = { note: 'body', job: 'title' };
const STATUS: Readonly<Record<TableName, string>> = { note: 'tag', job: 'status' };
const KEY: Readonly<Record<TableName, string>> = { note: 'note_id', job: 'job_id' };

export const keyColumn = (table: TableName): string => KEY[table];

export function sameRow(a: Row | null | undefined, b: Row | null | undefined): boolean {
  return (a ?? null) === null ? (b ?? null) === null : b !== null && b !== undefined && a?.text === b.text && a?.status === b.status;
}

const show = (row: Row | null | undefined): string => (row === null || row === undefined ? 'absent' : JSON.stringify(row));

/** Both databases' rows of both tables. */
export async function readHoldings(clients: Record<Side, pg.Client>): Promise<Holdings> {
  const out = {} as Holdings;
  for (const side of SIDES) {
    out[side] = { note: new Map(), job: new Map() };
    for (const table of TABLES) {
      const rows = await clients[side].query<{ k: number; text: string; status: string | null }>(
        `SELECT ${KEY[table]} AS k, ${TEXT[table]} AS text, ${STATUS[table]} AS status FROM ${table}`,
      );
      for (const r of rows.rows) out[side][table].set(r.k, { text: r.text, status: r.status });
    }
  }
  return out;
}

/** Keys with a parked conflict on either database, per table. */
export async function readParked(clients: Record<Side, pg.Client>): Promise<Record<TableName, Set<number>>> {
  const out: Record<TableName, Set<number>> = { note: new Set(), job: new Set() };
  for (const side of SIDES) {
    const exists = await clients[side].query<{ ok: boolean }>(`SELECT to_regclass('bisync.conflicts') IS NOT NULL AS ok`);
    if (exists.rows[0]?.ok !== true) continue;
    const rows = await clients[side].query<{ table_name: TableName; key: string[] }>('SELECT table_name, key FROM bisync.conflicts');
    for (const r of rows.rows) out[r.table_name].add(Number(r.key[0]));
  }
  return out;
}

/**
 * Every write so far, per table and key, in the order they happened. Each row also belongs to a
 * lineage: an insert starts one, an update (or a resolve) continues the one the writer held, and
 * bisync carries rows without changing it. A delete ends the lineage the deleting side held.
 */
export class History {
  private seq = 0;
  private tokens = 0;
  private lineages = 0;
  readonly events: Record<TableName, Map<number, Event[]>> = { note: new Map(), job: new Map() };
  /** Row text → its lineage. */
  private readonly lineageOf = new Map<string, number>();
  /** Per side, table and key: each lineage that side has held there (seen after a command, or written) → since when (seq). */
  private readonly seen: Record<Side, Record<TableName, Map<number, Map<number, number>>>> = {
    desktop: { note: new Map(), job: new Map() },
    cloud: { note: new Map(), job: new Map() },
  };

  /** A value no write used before (the token makes each write's text unique). */
  freshText(side: Side, suffix: string): string {
    this.tokens++;
    return `${side[0]}${this.tokens}.${suffix}`;
  }

  /**
   * One write by `side`: `row` (null: a delete). `continues` is the row whose lineage it carries on
   * (an update's or delete's previous row, a resolve's kept row); without it an insert starts one.
   */
  record(table: TableName, key: number, side: Side, row: Row | null, continues?: Row | null): void {
    this.seq++;
    const inherited = continues === undefined || continues === null ? undefined : this.lineageOf.get(continues.text);
    const lineage = inherited ?? ++this.lineages;
    if (row !== null) {
      this.lineageOf.set(row.text, lineage);
      this.saw(side, table, key, lineage);
    }
    const list = this.events[table].get(key) ?? [];
    list.push({ side, seq: this.seq, row, lineage });
    this.events[table].set(key, list);
  }

  private seenAt(side: Side, table: TableName, key: number): Map<number, number> {
    const map = this.seen[side][table];
    let found = map.get(key);
    if (found === undefined) {
      found = new Map();
      map.set(key, found);
    }
    return found;
  }

  /** `when`: the write a side first held the lineage at (a check sees it after the last write: this.seq + 0.5). */
  private saw(side: Side, table: TableName, key: number, lineage: number, when = this.seq): void {
    const at = this.seenAt(side, table, key);
    if (!at.has(lineage)) at.set(lineage, when);
  }

  /** How many writes touched this key so far (to tell whether one landed during a run). */
  count(table: TableName, key: number): number {
    return this.events[table].get(key)?.length ?? 0;
  }

  /**
   * No write is lost and no delete undone (with conflicts: park). What a side holds for a key is
   * the result of that side's own last write to it, or of a later write on the other side that
   * bisync carried over; a row is always some write's version, never a mix or an invention. After
   * a delete, a row may also arrive that the other side created on its own: a lineage the deleting
   * side had not held before its delete, while the row it deleted never reached the other side.
   */
  checkNothingLost(now: Holdings): void {
    for (const table of TABLES) {
      for (let key = 1; key <= KEYS; key++) {
        const events = this.events[table].get(key) ?? [];
        for (const side of SIDES) {
          const held = now[side][table].get(key) ?? null;
          const where = `${side}.${table} key ${key} holds ${show(held)}; writes: ${events.map((e) => `#${e.seq} ${e.side} ${show(e.row)}`).join(', ') || 'none'}`;
          if (held !== null && !events.some((e) => sameRow(e.row, held))) throw new Error(`a row no write produced: ${where}`);
          const own = [...events].reverse().find((e) => e.side === side);
          if (own === undefined || sameRow(own.row, held)) continue;
          const other = side === 'desktop' ? 'cloud' : 'desktop';
          const later = events.some((e) => e.side === other && e.seq > own.seq && sameRow(e.row, held));
          const independent =
            own.row === null &&
            held !== null &&
            (this.seenAt(side, table, key).get(this.lineageOf.get(held.text) ?? -1) ?? Infinity) > own.seq &&
            !this.seenAt(other, table, key).has(own.lineage);
          if (!later && !independent) {
            const what = own.row === null ? 'a delete was undone' : 'a write was lost';
            throw new Error(`${what}: ${where}`);
          }
        }
      }
    }
    for (const side of SIDES) {
      for (const table of TABLES) {
        // Seen at this check, so after the last write: a check repeated with nothing written between judges alike.
        for (const [key, row] of now[side][table]) this.saw(side, table, key, this.lineageOf.get(row.text) ?? -1, this.seq + 0.5);
      }
    }
  }
}

/** The keys whose rows differ between the two sides, each with a line saying how. */
export function differences(now: Holdings, table: TableName): { key: number; line: string }[] {
  const out: { key: number; line: string }[] = [];
  for (let key = 1; key <= KEYS; key++) {
    const d = now.desktop[table].get(key);
    const c = now.cloud[table].get(key);
    if (!sameRow(d, c)) out.push({ key, line: `${table} ${key}: desktop ${show(d)}, cloud ${show(c)}` });
  }
  return out;
}
