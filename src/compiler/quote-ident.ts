import type { QualifiedName } from '../config/types.js';

/** Quote one SQL identifier, doubling embedded quotes (as libpq's PQescapeIdentifier does). */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('an SQL identifier cannot contain a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."table"`, or just `"table"` when the schema is left to the search_path. */
export function quoteQualified(name: QualifiedName): string {
  return name.schema === null ? quoteIdent(name.name) : `${quoteIdent(name.schema)}.${quoteIdent(name.name)}`;
}

/** How a table is named to people: `schema.table` or `table`. */
export function displayName(name: QualifiedName): string {
  return name.schema === null ? name.name : `${name.schema}.${name.name}`;
}
