import type pg from 'pg';
import type { Catalog, CatalogTable } from '../compiler/catalog.js';
import { quoteQualified } from '../compiler/quote-ident.js';
import type { ResolvedConfig } from '../config/types.js';

/**
 * Columns, primary key, unique keys and foreign keys of the relation `c` (a pg_class row), as JSON:
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
                  'identity', a.attidentity) ORDER BY a.attnum), '[]'::json)
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
                                   JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum))
                  ORDER BY f.conname), '[]'::json)
          FROM pg_constraint f
          JOIN pg_class rc ON rc.oid = f.confrelid
          JOIN pg_namespace rn ON rn.oid = rc.relnamespace
         WHERE f.conrelid = c.oid AND f.contype = 'f') AS foreign_keys`;

// One round trip per database: every configured table, resolved through the search_path like the
// statements that will use it, with columns, unique keys and foreign keys as JSON.
const CATALOG_SQL = `
WITH wanted AS (
  SELECT w.ord, to_regclass(w.req) AS oid
  FROM unnest($1::text[]) WITH ORDINALITY AS w(req, ord)
)
SELECT w.ord,
       current_setting('server_version_num')::int AS version,
       pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid,
       CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE')
            THEN (SELECT system_identifier::text FROM pg_control_system()) END AS system_id,
       pg_relation_filenode(c.oid)::text AS relfilenode,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind AS kind,
       CASE WHEN c.oid IS NOT NULL THEN json_build_object(
         'select', has_table_privilege(c.oid, 'SELECT'),
         'insert', has_table_privilege(c.oid, 'INSERT'),
         'update', has_table_privilege(c.oid, 'UPDATE'),
         'delete', has_table_privilege(c.oid, 'DELETE')) END AS privileges,
       ${RELATION_DETAILS_SQL}
  FROM wanted w
  LEFT JOIN pg_class c ON c.oid = w.oid
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY w.ord`;

interface CatalogRow {
  ord: string;
  version: number;
  next_xid: string;
  system_id: string | null;
  relfilenode: string | null;
  schema: string | null;
  name: string | null;
  kind: string | null;
  columns: CatalogTable['columns'] | null;
  primary_key: string[] | null;
  unique_keys: string[][] | null;
  foreign_keys: CatalogTable['foreignKeys'] | null;
  privileges: CatalogTable['privileges'] | null;
}

/** Read the catalog of every configured table on one database (read-only, one query). */
export async function introspect(client: pg.ClientBase, config: ResolvedConfig, database: string): Promise<Catalog> {
  const names = config.tables.map((t) => {
    const name = t.tables[database];
    if (name === undefined) throw new Error(`table ${t.name} has no name on ${database}`);
    return quoteQualified(name);
  });
  const result = await client.query<CatalogRow>(CATALOG_SQL, [names]);
  const tables: Record<string, CatalogTable | null> = {};
  config.tables.forEach((t, i) => {
    const row = result.rows[i];
    tables[t.name] =
      row === undefined || row.name === null || row.schema === null
        ? null
        : {
            schema: row.schema,
            name: row.name,
            kind: row.kind ?? 'r',
            columns: row.columns ?? [],
            primaryKey: row.primary_key,
            uniqueKeys: row.unique_keys ?? [],
            foreignKeys: row.foreign_keys ?? [],
            ...(row.privileges === null ? {} : { privileges: row.privileges }),
            relfilenode: row.relfilenode,
          };
  });
  const first = result.rows[0];
  return {
    database,
    serverVersion: first?.version ?? 0,
    ...(first === undefined ? {} : { server: { systemId: first.system_id, nextXid: first.next_xid } }),
    tables,
  };
}
