import type pg from 'pg';
import type { DatabaseListing, ListedTable } from '../compiler/catalog.js';
import { catalogTableFrom, RELATION_DETAILS_SQL } from './introspect.js';
import type { RelationDetailsRow } from './introspect.js';

// One round trip: every ordinary and partitioned table outside the system schemas, the schemas
// given in $1 and extension-owned tables (such as PostGIS's spatial_ref_sys), with the same
// columns, keys, foreign keys and triggers `introspect.ts` reads. Catalog only: no user table is read.
const LIST_TABLES_SQL = `
SELECT current_setting('server_version_num')::int AS version,
       (SELECT coalesce(json_agg(t ORDER BY t.schema COLLATE "C", t.name COLLATE "C"), '[]'::json) FROM (
          SELECT n.nspname AS schema,
                 c.relname AS name,
                 c.relkind AS kind,
                 -- visible: the first relation of this name along the session's own path ($2) is this one
                 (SELECT (array_agg(p.nsp ORDER BY p.pos))[1] FROM unnest($2::text[]) WITH ORDINALITY AS p(nsp, pos)
                   WHERE EXISTS (SELECT 1 FROM pg_class c2 JOIN pg_namespace n2 ON n2.oid = c2.relnamespace
                                  WHERE n2.nspname = p.nsp AND c2.relname = c.relname)) IS NOT DISTINCT FROM n.nspname::text AS visible,
                 ${RELATION_DETAILS_SQL}
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p')
             AND NOT c.relispartition
             AND n.nspname NOT LIKE 'pg\\_%'
             AND n.nspname <> 'information_schema'
             AND n.nspname <> ALL($1::text[])
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
       ) t) AS tables`;

interface ListedRow extends RelationDetailsRow {
  schema: string;
  name: string;
  kind: string;
  visible: boolean;
}

/**
 * Every user table of one database (not the system schemas, nor `excludeSchemas`), read from the
 * catalog in one query. Run it inside `readOnly`, which gives the session's own `searchPath`.
 */
export async function listTables(client: pg.ClientBase, excludeSchemas: readonly string[], searchPath: readonly string[]): Promise<DatabaseListing> {
  const result = await client.query<{ version: number; tables: ListedRow[] }>(LIST_TABLES_SQL, [[...excludeSchemas], [...searchPath]]);
  const row = result.rows[0];
  const tables: ListedTable[] = (row?.tables ?? []).map((t) => ({ ...catalogTableFrom(t.schema, t.name, t.kind, t), visible: t.visible }));
  // Code-point order, whatever the locale (the query's COLLATE "C" already sorts by bytes).
  const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  tables.sort((a, b) => byCodePoint(a.schema, b.schema) || byCodePoint(a.name, b.name));
  return { serverVersion: row?.version ?? 0, tables };
}
