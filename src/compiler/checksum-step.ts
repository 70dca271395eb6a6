import type { ResolvedTable } from '../config/types.js';
import { SYNC_BUCKET_BITS, syncChecksumColumns } from './bucket-checksum.js';
import type { ChecksumColumn } from './bucket-checksum.js';
import type { ColumnMapping, StepMode } from './plan-types.js';

/** What the checksum-first statements of a step need (bucket-checksums, copy-out, the deletes). */
export interface StepChecksum {
  readonly bits: number;
  readonly sourceKeys: readonly ChecksumColumn[];
  readonly sourceColumns: readonly ChecksumColumn[];
  readonly targetKeys: readonly ChecksumColumn[];
  readonly targetColumns: readonly ChecksumColumn[];
  /** T's origin column and this direction's marker: unmarked rows always differ; the other side's are counted apart (null: no origin rule). */
  readonly owned: { readonly column: string; readonly mine: string } | null;
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
 * with); not while rejects are pending (each is read again by a full read); not for edits: both
 * (the base decides there, not the rows alone) nor for a read filtered by the origin column
 * (T holds rows F's filter leaves out); not when a column's type differs in a way F cannot
 * reproduce as T holds it.
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
  if (input.mode !== 'full' || table.compare === 'full' || input.modeOption === 'full' || input.threeWay || input.originFilter !== null) return none();
  if (input.pendingRejects > 0) return none();
  if (!input.hasRunBefore) return none('first run of this step: no checksum compare');
  const cols = syncChecksumColumns(input.columns);
  if ('unsupported' in cols) return none(`no checksum compare: ${cols.unsupported}`);
  const keyCols = syncChecksumColumns(input.keys);
  if ('unsupported' in keyCols) return none(`no checksum compare: ${keyCols.unsupported}`);
  const buckets = 2 ** SYNC_BUCKET_BITS;
  return {
    checksum: {
      bits: SYNC_BUCKET_BITS,
      sourceKeys: keyCols.source,
      sourceColumns: cols.source,
      targetKeys: keyCols.target,
      targetColumns: cols.target,
      owned: input.origin,
    },
    note: `checksum-first: both databases sum row hashes per bucket of keys (${buckets.toLocaleString('en-US')} buckets), and only the rows of buckets that differ are read`,
  };
}
