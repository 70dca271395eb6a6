import type { ResolvedTable } from '../config/types.js';
import { SYNC_BUCKET_BITS, syncChecksumColumns } from './bucket-checksum.js';
import type { ChecksumColumn } from './bucket-checksum.js';
import type { ColumnMapping, StepMode } from './plan-types.js';

/**
 * A count with its digits grouped in threes (1,024), as the notes and reports print it: by hand, since
 * the first toLocaleString of a process loads ICU's number formatting (some 15 ms of every run).
 */
export function groupDigits(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+$)/g, ',');
}

const BUCKETS = groupDigits(2 ** SYNC_BUCKET_BITS);

/** What the checksum-first statements of a step need (bucket-checksums, copy-out, the deletes). */
export interface StepChecksum {
  readonly bits: number;
  readonly sourceKeys: readonly ChecksumColumn[];
  readonly sourceColumns: readonly ChecksumColumn[];
  readonly targetKeys: readonly ChecksumColumn[];
  readonly targetColumns: readonly ChecksumColumn[];
  /** T's origin column and this direction's marker: unmarked rows always differ; the other side's are counted apart (null: no origin rule). */
  readonly owned: { readonly column: string; readonly mine: string } | null;
  /**
   * edits: both: each side sums, per bucket of base keys, the merge's fingerprint of every settled key
   * (row and that side's own copy of the base agree, nothing parked) and a value the other side never
   * sends for every other key (bucket-checksums-three-way.sql.hbs).
   */
  readonly threeWay: boolean;
}

export interface ChecksumChoice {
  readonly checksum: StepChecksum | null;
  /** Said after the step's reason: that it compares by checksum first, or why it does not. */
  readonly note: string | null;
}

/**
 * Whether a step that reads F in full compares bucket checksums first (SPEC §8) and reads only the
 * rows of buckets that differ. Not when the config says `compare: full` or the run `--mode full`
 * (the escape hatch: every row, as before); not on a step's first run (nothing on T to compare
 * with); not while rejects are pending (each is read again by a full read); not for a read
 * filtered by the origin column (T holds rows F's filter leaves out); not when a column's type
 * differs in a way F cannot reproduce as T holds it. For edits: both the base decides, not the rows
 * alone: a bucket is skipped only when every key in it is settled on both sides (its row and that
 * side's copy of the base hold the same fingerprint, no conflict parked), which needs the merge's
 * fingerprint computed on F over F's own values: the same type on both sides for every column.
 */
export function chooseChecksum(input: {
  readonly table: ResolvedTable;
  readonly mode: StepMode;
  readonly modeOption: string;
  readonly hasRunBefore: boolean;
  readonly pendingRejects: number;
  readonly threeWay: boolean;
  readonly originFilter: string | null;
  readonly origin: { readonly column: string; readonly mine: string } | null;
  readonly columns: readonly ColumnMapping[];
  readonly keys: readonly ColumnMapping[];
}): ChecksumChoice {
  const none = (note: string | null = null): ChecksumChoice => ({ checksum: null, note });
  const { table } = input;
  if (input.mode !== 'full' || table.compare === 'full' || input.modeOption === 'full' || input.originFilter !== null) return none();
  if (input.pendingRejects > 0) return none();
  if (!input.hasRunBefore) return none('first run of this step: no checksum compare');
  if (input.threeWay) return threeWayChecksum(input.columns, input.keys);
  const cols = syncChecksumColumns(input.columns);
  if ('unsupported' in cols) return none(`no checksum compare: ${cols.unsupported}`);
  const keyCols = syncChecksumColumns(input.keys);
  if ('unsupported' in keyCols) return none(`no checksum compare: ${keyCols.unsupported}`);
  return {
    checksum: {
      bits: SYNC_BUCKET_BITS,
      sourceKeys: keyCols.source,
      sourceColumns: cols.source,
      targetKeys: keyCols.target,
      targetColumns: cols.target,
      owned: input.origin,
      threeWay: false,
    },
    note: `checksum-first: both databases sum row hashes per bucket of keys (${BUCKETS} buckets), and only the rows of buckets that differ are read`,
  };
}

// A key's text in the base depends on the session's zone for these types: the two servers' texts of one key would differ.
const ZONED_KEY = /^(timestamp|time)(\(\d\))? with time zone$/;

/**
 * edits: both: the merge's fingerprint of F's row is computed on T from F's text cast to T's types;
 * F computes it over its own values, which gives the same text only when each column has the same
 * type (and modifier) on both sides. Otherwise the step reads in full and says which column.
 */
export function threeWayChecksum(columns: readonly ColumnMapping[], keys: readonly ColumnMapping[]): ChecksumChoice {
  const differing = [...keys, ...columns].find((c) => c.type !== c.sourceType);
  if (differing !== undefined) {
    return {
      checksum: null,
      note: `no checksum compare: column ${differing.source} is ${differing.sourceType} on one side and ${differing.type} on the other (edits: both compares the merge's fingerprints, computed on each side, which needs the same type on both)`,
    };
  }
  const zoned = keys.find((k) => ZONED_KEY.test(k.type));
  if (zoned !== undefined) return { checksum: null, note: `no checksum compare: key column ${zoned.source} is ${zoned.type}, whose text in the base depends on each server's zone` };
  return {
    checksum: { bits: SYNC_BUCKET_BITS, sourceKeys: [], sourceColumns: [], targetKeys: [], targetColumns: [], owned: null, threeWay: true },
    note: `checksum-first: each database sums, per bucket of keys (${BUCKETS} buckets), the fingerprint of every key whose row its own copy of the base holds as agreed with no conflict parked; only the rows of buckets that differ are read`,
  };
}
