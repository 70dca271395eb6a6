/** Every user table of one database, as `bisync init` reads it from the catalog. Types only. */
import type { CatalogTable } from '../compiler/catalog.js';

export interface ListedTable extends CatalogTable {
  /** Whether the bare table name resolves to this table through the connection's search_path. */
  readonly visible: boolean;
}

export interface DatabaseListing {
  /** `server_version_num`, e.g. 170009. */
  readonly serverVersion: number;
  /** Sorted by schema, then name (by code point, so the order never depends on a collation). */
  readonly tables: readonly ListedTable[];
}
