import type pg from 'pg';
import type { Catalog, CatalogForeignKey, CatalogReference, CatalogRowSecurity, CatalogTable, CatalogTrigger } from '../compiler/catalog.js';
import { quoteQualified } from '../compiler/quote-ident.js';
import type { ResolvedConfig } from '../config/types.js';
import { SESSION_PATH } from './read-only.js';

// The relation `c` and every partition or inheritance child below it, at any depth.
const DESCENDANTS_SQL = `WITH RECURSIVE tree(oid) AS (
                                   SELECT c.oid
                                   UNION ALL
                                   SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
                                 SELECT oid FROM tree`;

/**
 * Columns, primary key, unique keys, foreign keys and BEFORE row triggers of the relation `c` (a
 * pg_class row), as JSON:
 * the select-list shared by `introspect` and init's `listTables`. Constant SQL, no values.
 */
export const RELATION_DETAILS_SQL = `
       (SELECT coalesce(json_agg(json_build_object(
                  'name', a.attname,
                  'type', format_type(a.atttypid, a.atttypmod),
                  'category', ty.typcategory,
                  'notNull', a.attnotnull,
                  'hasDefault', a.atthasdef OR a.attidentity <> '',
                  'generated', a.attgenerated <> '',
                  'identity', a.attidentity,
                  'sequence', a.attidentity <> '' OR EXISTS (
                     -- A default that calls nextval() depends on its sequence (catalogs only: no lock on the table).
                     SELECT 1 FROM pg_attrdef d
                       JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
                       JOIN pg_class sq ON sq.oid = dep.refobjid AND sq.relkind = 'S'
                      WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum),
                  -- The values that sequence hands out (identity: its internal sequence; serial or nextval(): the
                  -- sequence its default depends on); last is NULL until used or without the right to read it.
                  'sequenceRange', (SELECT json_build_object('start', q.seqstart::text, 'increment', q.seqincrement::text,
                                                             'min', q.seqmin::text, 'max', q.seqmax::text,
                                                             'last', CASE WHEN has_sequence_privilege(q.seqrelid, 'SELECT,USAGE') THEN pg_sequence_last_value(q.seqrelid::regclass)::text END)
                                      FROM pg_sequence q
                                     WHERE q.seqrelid = coalesce(
                                             (SELECT (array_agg(dep.objid ORDER BY dep.objid))[1] FROM pg_depend dep
                                               WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
                                                 AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'),
                                             (SELECT (array_agg(dep.refobjid ORDER BY dep.refobjid))[1] FROM pg_attrdef d
                                                JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
                                                JOIN pg_class sq ON sq.oid = dep.refobjid AND sq.relkind = 'S'
                                               WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum)))) ORDER BY a.attnum), '[]'::json)
          FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
       (SELECT coalesce(json_agg(cols), '[]'::json) FROM (
          SELECT (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
                    FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, i)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS cols
            FROM pg_index i
           WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
           ORDER BY i.indexrelid) u) AS unique_keys,
       (SELECT coalesce(json_agg(json_build_object(
                  'name', f.conname,
                  'columns', (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
                                FROM unnest(f.conkey) WITH ORDINALITY AS k(attnum, i)
                                JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum),
                  'refSchema', rn.nspname,
                  'refTable', rc.relname,
                  'refColumns', (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
                                   FROM unnest(f.confkey) WITH ORDINALITY AS k(attnum, i)
                                   JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum),
                  'declaredOn', CASE WHEN f.conrelid <> c.oid THEN dn.nspname || '.' || dc.relname END)
                  ORDER BY f.conrelid <> c.oid, dn.nspname COLLATE "C", dc.relname COLLATE "C", f.conname COLLATE "C"), '[]'::json)
          FROM pg_constraint f
          JOIN pg_class dc ON dc.oid = f.conrelid
          JOIN pg_namespace dn ON dn.oid = dc.relnamespace
          -- A reference to one partition is a reference to the partitioned table bisync syncs.
          JOIN pg_class rc ON rc.oid = CASE WHEN (SELECT p.relispartition FROM pg_class p WHERE p.oid = f.confrelid)
                                            THEN pg_partition_root(f.confrelid) ELSE f.confrelid END
          JOIN pg_namespace rn ON rn.oid = rc.relnamespace
         WHERE f.contype = 'f'
           -- Declared on the table, or on any partition or inheritance child below it (whose rows
           -- are written through it), but not the copies a partitioned table's own keys make.
           AND f.conrelid IN (${DESCENDANTS_SQL})
           AND (f.conrelid = c.oid OR f.conparentid = 0)) AS foreign_keys,
       (SELECT coalesce(json_agg(json_build_object(
                  'name', tg.tgname,
                  'declaredOn', CASE WHEN tg.tgrelid <> c.oid THEN tn.nspname || '.' || tc.relname END,
                  'function', pn.nspname || '.' || p.proname,
                  'language', l.lanname,
                  'source', p.prosrc,
                  'args', encode(tg.tgargs, 'escape'),
                  'onInsert', tg.tgtype & 4 <> 0,
                  'onUpdate', tg.tgtype & 16 <> 0,
                  'enabled', tg.tgenabled)
                  ORDER BY tg.tgrelid <> c.oid, tg.tgname COLLATE "C", tn.nspname COLLATE "C", tc.relname COLLATE "C"), '[]'::json)
          FROM pg_trigger tg
          JOIN pg_class tc ON tc.oid = tg.tgrelid
          JOIN pg_namespace tn ON tn.oid = tc.relnamespace
          JOIN pg_proc p ON p.oid = tg.tgfoid
          JOIN pg_namespace pn ON pn.oid = p.pronamespace
          JOIN pg_language l ON l.oid = p.prolang
         WHERE NOT tg.tgisinternal
           AND tg.tgenabled <> 'D'
           AND tg.tgtype & 1 <> 0        -- FOR EACH ROW
           AND tg.tgtype & 2 <> 0        -- BEFORE
           AND tg.tgtype & (4 | 16) <> 0 -- INSERT or UPDATE
           AND tg.tgrelid IN (${DESCENDANTS_SQL})
           AND (tg.tgrelid = c.oid OR tg.tgparentid = 0)) AS triggers`;

/**
 * What a sync step could touch or be refused by, beyond the table itself: the foreign keys that
 * reference it (recursively through ON DELETE CASCADE, each edge once per path), its enabled user
 * triggers, and how row-level security applies to the connecting role. Constant SQL, no values.
 */
const SAFETY_DETAILS_SQL = `
       (SELECT coalesce(json_agg(json_build_object(
                  'path', (SELECT array_to_json(array_agg(p::text)) FROM unnest(r.path) AS p),
                  'name', r.conname,
                  'schema', rn.nspname,
                  'table', rc.relname,
                  'columns', (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
                                FROM unnest(r.conkey) WITH ORDINALITY AS k(attnum, i)
                                JOIN pg_attribute a ON a.attrelid = r.conrelid AND a.attnum = k.attnum),
                  'refColumns', (SELECT array_to_json(array_agg(a.attname ORDER BY k.i))
                                   FROM unnest(r.confkey) WITH ORDINALITY AS k(attnum, i)
                                   JOIN pg_attribute a ON a.attrelid = r.confrelid AND a.attnum = k.attnum),
                  'onDelete', r.confdeltype,
                  'tableColumns', (SELECT array_to_json(array_agg(a.attname ORDER BY a.attnum))
                                     FROM pg_attribute a
                                    WHERE a.attrelid = r.conrelid AND a.attnum > 0 AND NOT a.attisdropped))
                  ORDER BY r.path), '[]'::json)
          FROM (WITH RECURSIVE refs AS (
                  SELECT ARRAY[f.oid] AS path, f.conname, f.conrelid, f.confrelid, f.conkey, f.confkey, f.confdeltype
                    FROM pg_constraint f
                   WHERE f.contype = 'f' AND f.confrelid = c.oid
                  UNION ALL
                  SELECT refs.path || f.oid, f.conname, f.conrelid, f.confrelid, f.conkey, f.confkey, f.confdeltype
                    FROM refs
                    JOIN pg_constraint f ON f.contype = 'f' AND f.confrelid = refs.conrelid
                   WHERE refs.confdeltype = 'c' AND f.oid <> ALL (refs.path) AND cardinality(refs.path) < 8
                ) SELECT * FROM refs) AS r
          JOIN pg_class rc ON rc.oid = r.conrelid
          JOIN pg_namespace rn ON rn.oid = rc.relnamespace) AS referenced_by,
       (SELECT coalesce(json_agg(tg.tgname ORDER BY tg.tgname), '[]'::json)
          FROM pg_trigger tg
         WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal AND tg.tgenabled <> 'D') AS user_triggers,
       json_build_object(
         'enabled', c.relrowsecurity,
         'forced', c.relforcerowsecurity,
         'roleBypasses', coalesce((SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user), false),
         'roleOwns', pg_has_role(current_user, c.relowner, 'USAGE'),
         'policyCommands', (SELECT coalesce(json_agg(DISTINCT p.polcmd::text), '[]'::json)
                              FROM pg_policy p
                             WHERE p.polrelid = c.oid AND p.polpermissive
                               AND (0::oid = ANY (p.polroles)
                                    OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS pr(oid) WHERE pg_has_role(current_user, pr.oid, 'USAGE')))),
         'role', current_user) AS row_security`;

// One query per database: every configured table with columns, unique keys and foreign keys as
// JSON. The search_path is pinned to pg_catalog, so a name without a schema is looked up along the
// session's own path, as the role's other sessions would resolve it: kept by the transaction's
// opening (read-only.ts), read here from the transaction rather than passed as a value, so that
// this query travels in the same round trip as the opening.
const CATALOG_SQL = `
WITH wanted AS (
  SELECT w.ord,
         CASE WHEN w.schema IS NULL
              THEN (SELECT (array_agg(c.oid ORDER BY p.pos))[1]
                      FROM unnest(${SESSION_PATH}) WITH ORDINALITY AS p(nsp, pos)
                      JOIN pg_namespace n ON n.nspname = p.nsp
                      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name)
              ELSE (SELECT c.oid
                      FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = w.schema AND c.relname = w.name)
         END AS oid
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema, name, ord)
)
SELECT w.ord,
       current_setting('server_version_num')::int AS version,
       pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid,
       to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS clock,
       CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE')
            THEN (SELECT system_identifier::text FROM pg_control_system()) END AS system_id,
       pg_relation_filenode(c.oid)::text AS relfilenode,
       current_setting('TimeZone') AS time_zone,
       pg_has_role('pg_read_all_stats', 'USAGE') AS sees_sessions,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind AS kind,
       CASE WHEN c.oid IS NOT NULL THEN json_build_object(
         'select', has_table_privilege(c.oid, 'SELECT'),
         'insert', has_table_privilege(c.oid, 'INSERT'),
         'update', has_table_privilege(c.oid, 'UPDATE'),
         'delete', has_table_privilege(c.oid, 'DELETE')) END AS privileges,
       current_setting('server_encoding') AS encoding,
       ${RELATION_DETAILS_SQL},
       ${SAFETY_DETAILS_SQL}
  FROM wanted w
  LEFT JOIN pg_class c ON c.oid = w.oid
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY w.ord`;

/** The columns `RELATION_DETAILS_SQL` selects, as node-postgres returns them. */
export interface RelationDetailsRow {
  columns: CatalogTable['columns'] | null;
  primary_key: string[] | null;
  unique_keys: string[][] | null;
  foreign_keys: CatalogForeignKey[] | null;
  triggers: (Omit<CatalogTrigger, 'args'> & { args: string })[] | null;
}

interface CatalogRow extends RelationDetailsRow {
  ord: string;
  version: number;
  next_xid: string;
  system_id: string | null;
  clock: string;
  relfilenode: string | null;
  time_zone: string;
  sees_sessions: boolean;
  schema: string | null;
  name: string | null;
  kind: string | null;
  privileges: CatalogTable['privileges'] | null;
  encoding: string;
  referenced_by: (Omit<CatalogReference, 'children'> & { path: string[] })[] | null;
  user_triggers: string[] | null;
  row_security: CatalogRowSecurity | null;
}

/** The flat, path-ordered list of references as a tree: each edge under the one its path extends. */
function referenceTree(rows: readonly (Omit<CatalogReference, 'children'> & { path: string[] })[]): CatalogReference[] {
  const build = (prefix: readonly string[]): CatalogReference[] =>
    rows
      .filter((r) => r.path.length === prefix.length + 1 && prefix.every((p, i) => r.path[i] === p))
      .map(({ path, ...edge }) => ({ ...edge, children: build(path) }));
  return build([]);
}

/** A catalog table from its pg_class identity and the `RELATION_DETAILS_SQL` columns. */
export function catalogTableFrom(schema: string, name: string, kind: string, row: RelationDetailsRow): CatalogTable {
  return {
    schema,
    name,
    kind,
    columns: row.columns ?? [],
    primaryKey: row.primary_key,
    uniqueKeys: row.unique_keys ?? [],
    foreignKeys: row.foreign_keys ?? [],
    triggers: (row.triggers ?? []).map((t) => ({ ...t, args: triggerArgs(t.args) })),
  };
}

/**
 * pg_trigger.tgargs as `encode(…, 'escape')` prints it: each argument ends in a NUL byte (`\000`),
 * a backslash is `\\` and other non-printable bytes are `\ooo`.
 */
function triggerArgs(escaped: string): string[] {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped.charCodeAt(i);
    if (ch === 0x5c && escaped[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else if (ch === 0x5c && /^[0-7]{3}$/.test(escaped.slice(i + 1, i + 4))) {
      bytes.push(Number.parseInt(escaped.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(...Buffer.from(escaped[i] ?? '', 'utf8'));
    }
  }
  const args: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      args.push(Buffer.from(bytes.slice(start, i)).toString('utf8'));
      start = i + 1;
    }
  }
  return args;
}

/**
 * Read the catalog of every configured table on one database (one query), in a transaction opened
 * by `openReadOnly` (it keeps the session's own path, for names the config gives without a schema).
 */
export async function introspect(client: pg.ClientBase, config: ResolvedConfig, database: string): Promise<Catalog> {
  const names = config.tables.map((t) => {
    const name = t.tables[database];
    if (name === undefined) throw new Error(`table ${t.name} has no name on ${database}`);
    return name;
  });
  const result = await client.query<CatalogRow>(CATALOG_SQL, [names.map((n) => n.schema), names.map((n) => n.name)]);
  const tables: Record<string, CatalogTable | null> = {};
  config.tables.forEach((t, i) => {
    const row = result.rows[i];
    if (row === undefined || row.name === null || row.schema === null) {
      tables[t.name] = null;
    } else {
      const table = catalogTableFrom(row.schema, row.name, row.kind ?? 'r', row);
      tables[t.name] = { ...table, ...(row.privileges === null ? {} : { privileges: row.privileges }), relfilenode: row.relfilenode,
        referencedBy: referenceTree(row.referenced_by ?? []),
        userTriggers: row.user_triggers ?? [],
        ...(row.row_security === null ? {} : { rowSecurity: row.row_security }),
      };
    }
  });
  const first = result.rows[0];
  return {
    database,
    serverVersion: first?.version ?? 0,
    serverEncoding: first?.encoding ?? 'UTF8',
    ...(first === undefined ? {} : { server: { systemId: first.system_id, nextXid: first.next_xid, clock: first.clock } }),
    timeZone: first?.time_zone ?? 'UTC',
    seesOtherSessions: first?.sees_sessions ?? false,
    tables,
  };
}
