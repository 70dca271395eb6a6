/**
 * The in-memory model of what each side should hold under the ownership policy (README, "The
 * ownership rule"), stepped exactly like SPEC §2 describes one sync step: read F, then merge into T
 * (insert new keys; update rows this direction owns and that differ; protect the other side's rows;
 * rows T refuses go to rejects and are read again (in full) and retried next run; reverse watermark = newest cursor read).
 *
 * Times are integers in microseconds since the epoch, so nothing goes through a JavaScript `Date`.
 */

export type TableName = 'client' | 'job';
export type Direction = 'forward' | 'reverse';
export const TABLES: readonly TableName[] = ['client', 'job'];
/** Keys are drawn from 1..KEY_SPACE so that both sides sometimes create the same key. */
export const KEY_SPACE: Readonly<Record<TableName, number>> = { client: 10, job: 16 };

/** The synced (non-key) columns of a row: client {name}, job {client_id, title, status}. */
export type Data = Readonly<Record<string, string | number | null>>;

export interface CloudRow {
  data: Data;
  source: 'D' | 'M';
  /** greatest(created_at, updated_at) in µs; tracked for mobile-owned rows only (reverse reads nothing else). */
  cursor: number | null;
}

export interface Reject {
  data: Data;
  reason: 'error' | 'conflict';
}

export interface Variant {
  lookback: '0s' | '5s';
  /** `reverse: { write }` of the job table (client stays upsert). */
  reverseJob: 'upsert' | 'insert-only';
  /** explicit: every mobile timestamp is generated (strictly increasing); server: now() on the cloud. */
  clock: 'explicit' | 'server';
  concurrency: 1 | 2;
  /** `timestamps: { desktop: xmin }`: forward reads, after its first run, only desktop rows written since its last read. */
  desktopXmin?: boolean;
  /**
   * How forward reads the desktop in full (SPEC §8): checksum-first (bucket checksums, then only
   * differing buckets) or `compare: full` (every row). The model predicts the same for both, except
   * rows read.
   */
  compare: 'checksum' | 'full';
}

export interface StepCounts {
  read: number;
  retried: number;
  inserted: number;
  updated: number;
  unchanged: number;
  protected: number;
  rejected: number;
  conflicts: number;
}

export interface Staged {
  table: TableName;
  direction: Direction;
  mode: 'full' | 'incremental';
  rows: Map<number, { data: Data; cursor: number | null }>;
  desktopAtRead?: ReadonlyMap<number, Data>;
}

export interface StepExpectation {
  table: TableName;
  direction: Direction;
  mode: 'full' | 'incremental';
  counts: StepCounts;
  /** Newest cursor among the rows read (reverse only); null when nothing with a cursor was read. */
  maxReadCursor: number | null;
  watermarkBefore: number | null;
  /** Forward by xmin, incremental: the desktop as it was at the read (rows the read may include beyond the written ones). */
  desktopAtRead?: ReadonlyMap<number, Data>;
}

export const stepKey = (table: string, direction: string): string => `${table}/${direction}`;

const LOOKBACK_US: Readonly<Record<Variant['lookback'], number>> = { '0s': 0, '5s': 5_000_000 };

export function sameData(a: Data, b: Data): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k] === b[k]);
}

export class Model {
  readonly desktop: Record<TableName, Map<number, Data>> = { client: new Map(), job: new Map() };
  readonly cloud: Record<TableName, Map<number, CloudRow>> = { client: new Map(), job: new Map() };
  readonly rejects = new Map<string, Map<number, Reject>>();
  /** Reverse watermarks (forward reads the desktop, which has no cursor columns: always full). */
  readonly watermark: Record<TableName, number | null> = { client: null, job: null };
  /** Mobile-owned keys whose desktop copy was edited on the desktop after the mobile version last arrived. */
  readonly desktopEditedMobile: Record<TableName, Set<number>> = { client: new Set(), job: new Set() };
  /**
   * desktopXmin: desktop keys written (by the office or by reverse) since forward last read the
   * table: the rows its next incremental read must include. xmin, like any cursor, sees no
   * deletes and does not see a desktop-owned row changed on the cloud until a full read.
   */
  readonly desktopWritten: Record<TableName, Set<number>> = { client: new Set(), job: new Set() };
  /** desktopXmin: forward has read the table once (a read snapshot is saved): later reads are incremental. */
  readonly forwardReadOnce: Record<TableName, boolean> = { client: false, job: false };
  /** Desktop keys whose row reverse wrote or found equal (recorded in the desktop's base): reverse upsert may overwrite only these. */
  readonly known: Record<TableName, Set<number>> = { client: new Set(), job: new Set() };
  /** Keys parked as insert-insert conflicts (reverse met a differing desktop row bisync did not write): left alone until equal. */
  readonly parked: Record<TableName, Set<number>> = { client: new Set(), job: new Set() };
  /** Every key ever written on either side: none may be lost. */
  readonly written: Record<TableName, Set<number>> = { client: new Set(), job: new Set() };
  /** Steps executed so far, per target side, for the runs table. */
  readonly executed: { runId: string; table: TableName; direction: Direction }[] = [];
  /** Last explicit timestamp handed out (µs). */
  clock: number;

  constructor(
    readonly variant: Variant,
    clockStart: number,
  ) {
    this.clock = clockStart;
  }

  /** The next explicit timestamp, strictly after every earlier one. */
  tick(gapUs: number): number {
    this.clock += Math.max(1, gapUs);
    return this.clock;
  }

  rejectsOf(table: TableName, direction: Direction): Map<number, Reject> {
    const key = stepKey(table, direction);
    let found = this.rejects.get(key);
    if (found === undefined) {
      found = new Map();
      this.rejects.set(key, found);
    }
    return found;
  }

  /** A deep copy, to predict a dry run without changing this model. */
  clone(): Model {
    const copy = new Model(this.variant, this.clock);
    for (const table of TABLES) {
      for (const [k, v] of this.desktop[table]) copy.desktop[table].set(k, v);
      for (const [k, v] of this.cloud[table]) copy.cloud[table].set(k, { ...v });
      for (const k of this.desktopEditedMobile[table]) copy.desktopEditedMobile[table].add(k);
      for (const k of this.written[table]) copy.written[table].add(k);
      for (const k of this.desktopWritten[table]) copy.desktopWritten[table].add(k);
      copy.forwardReadOnce[table] = this.forwardReadOnce[table];
      for (const k of this.known[table]) copy.known[table].add(k);
      for (const k of this.parked[table]) copy.parked[table].add(k);
      copy.watermark[table] = this.watermark[table];
    }
    for (const [k, v] of this.rejects) copy.rejects.set(k, new Map(v));
    copy.executed.push(...this.executed);
    return copy;
  }

  /** What the step's COPY reads from F, at the moment of the read (`--mode full` reads every row). */
  read(table: TableName, direction: Direction, forceFull = false): Staged {
    const rows = new Map<number, { data: Data; cursor: number | null }>();
    if (direction === 'forward') {
      const incremental = this.variant.desktopXmin === true && this.forwardReadOnce[table] && !forceFull && this.rejectsOf(table, direction).size === 0;
      for (const [key, data] of this.desktop[table]) if (!incremental || this.desktopWritten[table].has(key)) rows.set(key, { data, cursor: null });
      if (this.variant.desktopXmin !== true) return { table, direction, mode: 'full', rows };
      this.forwardReadOnce[table] = true;
      this.desktopWritten[table].clear();
      return { table, direction, mode: incremental ? 'incremental' : 'full', rows, ...(incremental ? { desktopAtRead: new Map(this.desktop[table]) } : {}) };
    }
    // Pending rejects are keys to read again from F: a step with any reads in full.
    const watermark = forceFull || this.rejectsOf(table, direction).size > 0 ? null : this.watermark[table];
    const since = watermark === null ? null : watermark - LOOKBACK_US[this.variant.lookback];
    for (const [key, row] of this.cloud[table]) {
      if (row.source !== 'M') continue;
      if (since !== null && (row.cursor === null || row.cursor < since)) continue;
      rows.set(key, { data: row.data, cursor: row.cursor });
    }
    return { table, direction, mode: watermark === null ? 'full' : 'incremental', rows };
  }

  /** The merge into T of what was read plus the pending rejects of this step, as SPEC §2 says. */
  merge(staged: Staged): StepExpectation {
    const { table, direction } = staged;
    const counts: StepCounts = { read: staged.rows.size, retried: 0, inserted: 0, updated: 0, unchanged: 0, protected: 0, rejected: 0, conflicts: 0 };
    const pending = this.rejectsOf(table, direction);
    const stage = new Map<number, Data>();
    for (const [key, row] of staged.rows) stage.set(key, row.data);
    // A reject is retried as F holds the row now (read in full above); a key F no longer has is dropped.
    for (const key of pending.keys()) if (stage.has(key)) counts.retried++;
    const refused = new Map<number, Reject>();
    const insertOnly = direction === 'reverse' && table === 'job' && this.variant.reverseJob === 'insert-only';
    for (const [key, data] of stage) {
      const parentOk = this.parentExists(table, data, direction === 'forward' ? 'cloud' : 'desktop');
      if (direction === 'forward') {
        const target = this.cloud[table].get(key);
        if (target === undefined) {
          if (!parentOk) refused.set(key, { data, reason: 'error' });
          else {
            this.cloud[table].set(key, { data, source: 'D', cursor: null });
            counts.inserted++;
          }
        } else if (target.source !== 'D') {
          counts.protected++;
        } else if (sameData(target.data, data)) {
          counts.unchanged++;
        } else if (!parentOk) {
          refused.set(key, { data, reason: 'error' });
        } else {
          target.data = data;
          counts.updated++;
        }
        continue;
      }
      const target = this.desktop[table].get(key);
      const known = this.known[table];
      const parked = this.parked[table];
      if (parked.has(key) && !(target !== undefined && sameData(target, data))) {
        // SPEC §7 (edits: owner): a parked collision is left alone until both sides hold the same row.
        counts.conflicts++;
      } else if (target === undefined) {
        if (!parentOk) refused.set(key, { data, reason: 'error' });
        else {
          this.desktop[table].set(key, data);
          this.desktopWritten[table].add(key);
          this.desktopEditedMobile[table].delete(key);
          known.add(key);
          counts.inserted++;
        }
      } else if (sameData(target, data)) {
        this.desktopEditedMobile[table].delete(key);
        parked.delete(key);
        known.add(key);
        counts.unchanged++;
      } else if (insertOnly) {
        refused.set(key, { data, reason: 'conflict' });
        counts.conflicts++;
      } else if (!known.has(key)) {
        // Reverse upsert never overwrites a differing desktop row bisync did not write: insert-insert, parked.
        parked.add(key);
        counts.conflicts++;
      } else if (!parentOk) {
        refused.set(key, { data, reason: 'error' });
      } else {
        this.desktop[table].set(key, data);
        this.desktopWritten[table].add(key);
        this.desktopEditedMobile[table].delete(key);
        known.add(key);
        counts.updated++;
      }
    }
    counts.rejected = refused.size;
    this.rejects.set(stepKey(table, direction), refused);

    let maxReadCursor: number | null = null;
    for (const row of staged.rows.values()) {
      if (row.cursor !== null && (maxReadCursor === null || row.cursor > maxReadCursor)) maxReadCursor = row.cursor;
    }
    const watermarkBefore = direction === 'reverse' ? this.watermark[table] : null;
    // Explicit clock: the watermark is exactly the newest cursor read. With the server clock the
    // caller replaces it by the stored value once checked (the in-flight clamp may hold it lower).
    if (direction === 'reverse' && maxReadCursor !== null) this.watermark[table] = maxReadCursor;
    return { table, direction, mode: staged.mode, counts, maxReadCursor, watermarkBefore, ...(staged.desktopAtRead === undefined ? {} : { desktopAtRead: staged.desktopAtRead }) };
  }

  /** A job needs its client on the side it is written to (both sides have the foreign key). */
  parentExists(table: TableName, data: Data, side: 'desktop' | 'cloud'): boolean {
    if (table !== 'job') return true;
    const parent = data.client_id;
    return typeof parent === 'number' && this[side].client.has(parent);
  }
}
