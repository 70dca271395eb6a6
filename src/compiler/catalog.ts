/** What bisync knows of one database's tables, read by the executor's introspection. Types only. */

export interface CatalogColumn {
  readonly name: string;
  /** `format_type()` of the column, e.g. `character varying(50)`. */
  readonly type: string;
  /** pg_type.typcategory: N numeric, S string, D date/time, B boolean, U user, A array, … */
  readonly category: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
  /** Generated columns cannot be written. */
  readonly generated: boolean;
  /** Its default draws from a sequence (serial, identity, or a `nextval(...)` default). */
  readonly sequence?: boolean;
  /** `a` GENERATED ALWAYS AS IDENTITY, `d` BY DEFAULT, '' not an identity column. */
  readonly identity: string;
  /** The values the sequence behind its default hands out (integers as text); null or absent without one. */
  readonly sequenceRange?: SequenceRange | null;
}

/** A sequence's parameters (pg_sequence) and its last value (null: unused, or not readable by this role). */
export interface SequenceRange {
  readonly start: string;
  readonly increment: string;
  readonly min: string;
  readonly max: string;
  readonly last: string | null;
}

export interface CatalogForeignKey {
  readonly name: string;
  readonly columns: readonly string[];
  readonly refSchema: string;
  readonly refTable: string;
  readonly refColumns: readonly string[];
  /**
   * The partition or inheritance child the constraint is declared on (`schema.name`), when it is
   * not declared on the table itself: its rows are written through the table, so it orders it too.
   */
  readonly declaredOn?: string | null;
}

/** A BEFORE … FOR EACH ROW trigger on INSERT or UPDATE: it may change the row bisync writes. */
export interface CatalogTrigger {
  readonly name: string;
  /** The partition or inheritance child it is declared on (`schema.name`), if not the table itself. */
  readonly declaredOn: string | null;
  /** The trigger function, `schema.name`. */
  readonly function: string;
  /** pg_language.lanname of the function: `plpgsql`, `c`, `internal`, … */
  readonly language: string;
  /** pg_proc.prosrc: the body for plpgsql, the C symbol for C functions. */
  readonly source: string;
  /** The arguments given in CREATE TRIGGER. */
  readonly args: readonly string[];
  readonly onInsert: boolean;
  readonly onUpdate: boolean;
  /** pg_trigger.tgenabled: `O` fires normally, `A` also under session_replication_role = replica, `R` only then. */
  readonly enabled: string;
}

/**
 * A foreign key that references a synced table, from a table of the same database (synced or not).
 * `children` are the keys referencing *that* table, followed only through ON DELETE CASCADE, since
 * only a cascade carries a delete further.
 */
export interface CatalogReference {
  readonly name: string;
  readonly schema: string;
  readonly table: string;
  /** The referencing columns, and the referenced ones on the parent, in constraint order. */
  readonly columns: readonly string[];
  readonly refColumns: readonly string[];
  /** pg_constraint.confdeltype: `c` cascade, `n` set null, `d` set default, `a` no action, `r` restrict. */
  readonly onDelete: string;
  /** Every column name of the referencing table (to find an origin column there). */
  readonly tableColumns: readonly string[];
  readonly children: readonly CatalogReference[];
}

/** Row-level security on a table, as it applies to the role bisync connects as. */
export interface CatalogRowSecurity {
  /** pg_class.relrowsecurity / relforcerowsecurity. */
  readonly enabled: boolean;
  readonly forced: boolean;
  /** The role is a superuser or has BYPASSRLS. */
  readonly roleBypasses: boolean;
  /** The role is (a member of) the table's owner, whom RLS spares unless forced. */
  readonly roleOwns: boolean;
  /** Policies that name the role (or PUBLIC), per command: `r` SELECT, `a` INSERT, `w` UPDATE, `d` DELETE, `*` ALL. */
  readonly policyCommands: readonly string[];
  /** The role bisync connects as. */
  readonly role: string;
}

export interface CatalogTable {
  readonly schema: string;
  readonly name: string;
  /** `r` table, `p` partitioned table, `v` view, … */
  readonly kind: string;
  readonly columns: readonly CatalogColumn[];
  readonly primaryKey: readonly string[] | null;
  /** Column sets of unique, non-partial, non-expression indexes (the primary key included). */
  readonly uniqueKeys: readonly (readonly string[])[];
  readonly foreignKeys: readonly CatalogForeignKey[];
  /** What the connecting role may do on the table (absent when not introspected). */
  readonly privileges?: { readonly select: boolean; readonly insert: boolean; readonly update: boolean; readonly delete: boolean };
  /** `pg_relation_filenode`: changes when the table is rewritten (VACUUM FULL, CLUSTER, emptying it…); for xmin reads. */
  readonly relfilenode?: string | null;
  /** Enabled BEFORE row triggers on INSERT or UPDATE, its partitions' and children's included. */
  readonly triggers?: readonly CatalogTrigger[];
  /** Foreign keys elsewhere that reference this table (introspect only; absent from init's listing). */
  readonly referencedBy?: readonly CatalogReference[];
  /** Enabled user triggers on the table (not the internal ones behind foreign keys). */
  readonly userTriggers?: readonly string[];
  readonly rowSecurity?: CatalogRowSecurity;
}

/** One table of a database as `bisync init` lists it. */
export interface ListedTable extends CatalogTable {
  /** Whether the bare table name resolves to this table through the connection's search_path. */
  readonly visible: boolean;
}

/** Every user table of one database, as `bisync init` reads it from the catalog. */
export interface DatabaseListing {
  /** `server_version_num`, e.g. 170009. */
  readonly serverVersion: number;
  /** Sorted by schema, then name (by code point, so the order never depends on a collation). */
  readonly tables: readonly ListedTable[];
}

/** Where a database stands in transaction ids, for xmin reads (SPEC §8). */
export interface CatalogServer {
  /** `pg_control_system().system_identifier`: differs on another server (a restore elsewhere); null when not readable. */
  readonly systemId: string | null;
  /** The next transaction id, 64-bit (`pg_snapshot_xmax` of a fresh snapshot), as text. */
  readonly nextXid: string;
  /** The server's clock when the catalog was read (`statement_timestamp()`, UTC, microseconds). */
  readonly clock?: string;
}

export interface Catalog {
  /** The database's config name. */
  readonly database: string;
  /** `server_version_num`, e.g. 170009. */
  readonly serverVersion: number;
  /** Transaction-id facts (absent from catalogs built by hand in tests). */
  readonly server?: CatalogServer;
  /**
   * The `TimeZone` a session of bisync's role gets there by default (server, database or role
   * setting): the zone PostgreSQL itself uses on that server to turn a `timestamp` or `date` into
   * an instant and back, so bisync's steps run in it too.
   */
  readonly timeZone: string;
  /**
   * Whether the role sees other sessions' transaction starts in `pg_stat_activity` (superuser or
   * pg_read_all_stats): the late-commit clamp reads them.
   */
  readonly seesOtherSessions: boolean;
  /** `server_encoding`, e.g. `UTF8` (introspect only). */
  readonly serverEncoding?: string;
  /** By config table name; null when the table does not exist there. */
  readonly tables: Readonly<Record<string, CatalogTable | null>>;
}
