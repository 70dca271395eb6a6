import type { Direction } from '../config/types.js';
import type { SessionWarning } from './session-warnings.js';

/** Where a statement runs: the step's source (F) or target (T) database. */
export type Side = 'source' | 'target';

export interface PlanParam {
  /** What the value is, for people reading the plan. */
  readonly name: string;
  /** Sent as a `$n` parameter, as text (null for SQL NULL). */
  readonly value: string | null;
  /** True when the executor supplies the value while running (a run id, a row range, a count). */
  readonly runtime: boolean;
}

/** One SQL statement with its `$n` parameters, in the order they are numbered. */
export interface PlanStatement {
  /** Stable identifier of the statement kind (the template name). */
  readonly kind: string;
  readonly side: Side;
  /** One line on what it does and why. */
  readonly purpose: string;
  readonly sql: string;
  readonly params: readonly PlanParam[];
  /**
   * Run-level probe checksums only: the same key on one database means the same answer within one probe (a
   * conditional statement's key is its form without the condition), so the probe computes it once (probe.ts).
   */
  readonly probeKey?: string;
}

export type StepMode = 'incremental' | 'full';

export interface ColumnMapping {
  /** Name on the source (F). */
  readonly source: string;
  /** Name on the target (T). */
  readonly target: string;
  /** The target column's type (`format_type`). */
  readonly type: string;
  /** The source column's type. */
  readonly sourceType: string;
}

export interface PlanStep {
  readonly table: string;
  readonly direction: Direction;
  /** Config names of the databases read (F) and written (T). */
  readonly source: string;
  readonly target: string;
  readonly sourceRelation: string;
  readonly targetRelation: string;
  /** The schema of bisync's own tables on the target. */
  readonly stateSchema: string;
  /** Tables (config names) whose step in the same direction must finish before this one starts. */
  readonly after: readonly string[];
  readonly mode: StepMode;
  readonly reason: string;
  /** The watermark this plan read from the state table (text, full precision); null when none. */
  readonly watermark: string | null;
  readonly columns: readonly ColumnMapping[];
  readonly write: 'upsert' | 'insert-only';
  readonly deletes: 'keep' | 'mirror';
  /** deletes: mirror refuses to remove more than this fraction of the rows this direction owns on T. */
  readonly maxDeleteFraction: number;
  /** Present when the step compares bucket checksums first and reads only the rows of differing buckets (SPEC §8). */
  readonly compare?: 'checksum';
  /** Present for edits: both tables: the step runs the three-way merge of SPEC §7. */
  readonly edits?: 'both';
  /** Target columns filled by a sequence default on insert: a dry run draws values PostgreSQL does not roll back. */
  readonly sequenceDefaults: readonly string[];
  /** The tables the guard watches: the target, and every table a mirror delete can reach through foreign keys. */
  readonly guardedRelations: readonly string[];
  /** Row-level security applies to bisync's role on the target: a 42501 there is about a row. */
  readonly targetRowSecurity: boolean;
  /** Safety findings `validate --live` reports for this step's tables (row-level security, foreign keys, triggers). */
  readonly warnings: readonly string[];
  /** Statements that create the state schema and tables, run once if they are missing. */
  readonly bootstrap: readonly PlanStatement[];
  /** The statements of the step, in order. */
  readonly statements: readonly PlanStatement[];
  /**
   * The step's probe (apply, before any step runs; one transaction per database for every step's probe):
   * when it finds nothing to do, the statements above do not run and the step is reported as
   * succeeded with nothing to do. Absent: the step always runs. Part of the step hash.
   */
  readonly probe?: readonly PlanStatement[];
  /** What the probe compares: `checksum` the step's checksums summed over the table on each database; `window` the rows the read would take. */
  readonly probeKind?: 'checksum' | 'window';
  /** sha256 of this step's statements and parameters. */
  readonly hash: string;
}

/** A step that cannot run: its table does not fit the databases (failed), or it runs after one that cannot (skipped). */
export interface UnplannedStep {
  readonly table: string;
  readonly direction: Direction;
  readonly source: string;
  readonly target: string;
  readonly status: 'failed' | 'skipped';
  /** Why, in one sentence per problem, with the config file position. */
  readonly reason: string;
  /** Leaves one row in runs on the target (when bisync's state exists there), so `status` shows it. */
  readonly recordRun: PlanStatement;
}

export interface Plan {
  /** Plan format version: a saved plan is refused by a bisync with another. */
  readonly version: 1;
  readonly config: string;
  readonly stateSchema: string;
  readonly steps: readonly PlanStep[];
  /** Steps that cannot run, and why; absent when every step was planned. The others still run. */
  readonly unplanned?: readonly UnplannedStep[];
  /** What works less safely than it could with these databases and roles (not part of the hash). */
  readonly warnings: readonly SessionWarning[];
  /** sha256 over every step hash. */
  readonly hash: string;
}
