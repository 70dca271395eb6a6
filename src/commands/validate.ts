import type { Catalog } from '../compiler/catalog.js';
import { checkCatalogs } from '../compiler/check-catalog.js';
import type { LiveProblem } from '../compiler/check-catalog.js';
import type { ResolvedConfig } from '../config/types.js';
import { connect } from '../executor/connect.js';
import { introspect } from '../executor/introspect.js';

export interface LiveReport {
  databases: { name: string; serverVersion: number }[];
  problems: LiveProblem[];
}

/** Read both catalogs (read-only: a READ ONLY transaction) and check the config against them. */
export async function readCatalogs(config: ResolvedConfig): Promise<Record<string, Catalog>> {
  const catalogs: Record<string, Catalog> = {};
  for (const db of Object.values(config.databases)) {
    const client = await connect(db);
    try {
      await client.query('BEGIN TRANSACTION READ ONLY');
      catalogs[db.name] = await introspect(client, config, db.name);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
  }
  return catalogs;
}

/** `bisync validate --live`: every mismatch between the config and both databases. */
export async function validateLive(config: ResolvedConfig): Promise<LiveReport> {
  const catalogs = await readCatalogs(config);
  return {
    databases: Object.values(catalogs).map((c) => ({ name: c.database, serverVersion: c.serverVersion })),
    problems: checkCatalogs(config, catalogs),
  };
}
