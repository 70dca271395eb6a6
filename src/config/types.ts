/**
 * Two shapes of the configuration: the untrusted one read from YAML (`Raw*`, as the JSON Schema
 * describes it) and the validated, fully resolved one the compiler consumes (`Resolved*`).
 */

export type Direction = 'forward' | 'reverse';
export type TableDirection = Direction | 'both';
export type WriteMode = 'upsert' | 'insert-only';
export type SslMode = 'disable' | 'require' | 'verify-full';
export type DeletesMode = 'keep' | 'mirror';
/** How a step that reads its source in full finds what changed (SPEC §8). */
export type CompareMode = 'checksum' | 'full';
export type EditsMode = 'owner' | 'both';

/** park: leave both sides alone and record the conflict; newest: the newer cursor value wins; or a database name. */
export type ConflictPolicy = { readonly kind: 'park' } | { readonly kind: 'newest' } | { readonly kind: 'database'; readonly database: string };

export interface RawDatabase {
  url: string;
  ssl?: SslMode;
  ca?: string;
}

export interface RawOrigin {
  column: string;
  forward: string;
  reverse: string;
}

export interface RawTableSettings {
  name?: string;
  primary_key?: string[];
  direction?: TableDirection;
  after?: string[];
  /** Cursor columns per database, or `xmin` (incremental by the transaction id of each row version). */
  timestamps?: Record<string, string[] | 'xmin'>;
  origin?: RawOrigin | false;
  lookback?: string;
  lock_timeout?: string;
  statement_timeout?: string;
  columns?: (string | Record<string, string>)[];
  deletes?: DeletesMode;
  compare?: CompareMode;
  edits?: EditsMode;
  /** park, newest, or a database name. */
  conflicts?: string;
  max_delete_fraction?: number;
  forward?: { write?: WriteMode };
  reverse?: { write?: WriteMode };
  /** Per-database blocks, keyed by database name. */
  [database: string]: unknown;
}

export interface RawConfig {
  version: 1;
  databases: Record<string, RawDatabase>;
  forward: { from: string; to: string };
  state?: { schema?: string };
  defaults?: RawTableSettings;
  tables: RawTableSettings[];
}

/** A table name on one database; `schema` null means the connection's search_path. */
export interface QualifiedName {
  readonly schema: string | null;
  readonly name: string;
}

export interface ResolvedDatabase {
  /** The name the config gives it. */
  readonly name: string;
  /** Full connection URL (may hold a password: never print it; use `describeDatabase`). */
  readonly url: string;
  readonly ssl: SslMode;
  /** Why this TLS mode: `explicit`, `url` (sslmode in the URL) or `default` (by host). */
  readonly sslSource: 'explicit' | 'url' | 'default';
  readonly ca: string | null;
  /** Where bisync connects (the URL's host, else PGHOST, else localhost): what it reports. */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** The URL's user; null leaves it to PGUSER or the operating-system user. */
  readonly user: string | null;
  /** The URL's `options` parameter (startup options a pooler may need), or null. */
  readonly options: string | null;
}

/** One synced column: its name on each database (keyed by database name). */
export type ColumnPair = Readonly<Record<string, string>>;

export interface ResolvedOrigin {
  /** A column of the table on the forward target. */
  readonly column: string;
  readonly forward: string;
  readonly reverse: string;
}

export interface ResolvedTable {
  readonly name: string;
  /** Position in the file (0-based). */
  readonly fileIndex: number;
  /** Where the table's entry starts in the config file (1-based). */
  readonly location: { readonly line: number; readonly column: number };
  /** The table on each database, keyed by database name. */
  readonly tables: Readonly<Record<string, QualifiedName>>;
  readonly primaryKey: readonly ColumnPair[];
  /** Explicit column list, or null for "the columns both sides have". */
  readonly columns: readonly ColumnPair[] | null;
  readonly direction: TableDirection;
  /** The steps of this table, in run order (forward before reverse). */
  readonly directions: readonly Direction[];
  readonly after: readonly string[];
  /** Cursor columns per database name; an empty list means "read in full" (or by xmin, see `xmin`). */
  readonly timestamps: Readonly<Record<string, readonly string[]>>;
  /** Databases where this table is read incrementally by row xmin (`timestamps: { db: xmin }`). */
  readonly xmin: readonly string[];
  readonly origin: ResolvedOrigin | null;
  readonly lookbackSeconds: number;
  /** SET LOCAL lock_timeout of every step transaction (0: wait forever). Default 30 s. */
  readonly lockTimeoutSeconds: number;
  /** SET LOCAL statement_timeout of every step transaction (0: no limit). Default 1 h. */
  readonly statementTimeoutSeconds: number;
  readonly deletes: DeletesMode;
  /** checksum: a full read first compares bucket checksums and reads only differing buckets; full: every row. */
  readonly compare: CompareMode;
  readonly maxDeleteFraction: number;
  /** Who may change a row: the origin rule's owner (SPEC §2), or both sides (three-way, SPEC §7). */
  readonly edits: EditsMode;
  /** How a conflict is settled with edits: both: park it, keep the newer version, or keep one database's. */
  readonly conflicts: ConflictPolicy;
  readonly write: Readonly<Record<Direction, WriteMode>>;
}

export interface ResolvedConfig {
  /** The config file as the user named it. */
  readonly file: string;
  readonly databases: Readonly<Record<string, ResolvedDatabase>>;
  readonly forward: { readonly from: string; readonly to: string };
  readonly reverse: { readonly from: string; readonly to: string };
  readonly stateSchema: string;
  /** In execution order: `after` dependencies first, then file order. */
  readonly tables: readonly ResolvedTable[];
}
