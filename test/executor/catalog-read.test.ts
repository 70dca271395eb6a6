import { describe, expect, it } from 'vitest';
import { readCatalogs } from '../../src/commands/validate.js';
import { Databases } from '../../src/executor/databases.js';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile } from './jobs-fixture.js';

// SPEC §8: every run starts by reading both catalogs and the state each database holds; over a WAN
// each round trip of that read is paid before anything else can start.

describe('the catalog and state read at the start of a run', () => {
  const dbs = useFreshDatabases('catalogread');

  it('costs each database two round trips once connected, state included', async () => {
    await createJobsSchema(dbs);
    const config = await testConfig(jobsConfigFile({ desktopXmin: true }), dbs);
    await apply(config);
    const databases = new Databases(config, { reuse: true });
    try {
      const { result, wire } = await databases.counting(async () => await readCatalogs(config, databases));
      // The state was read: the steps' watermarks are there.
      expect(Object.keys(result.state).length).toBeGreaterThan(0);
      expect(wire.roundTripsByDatabase).toEqual({ desktop: 2, cloud: 2 });
    } finally {
      await databases.close();
    }
  });

  it("finds a table named without a schema along the role's own search_path, however oddly that schema is named", async () => {
    const odd = 'field, "app" data';
    const quoted = `"${odd.replaceAll('"', '""')}"`;
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await query(url, `CREATE SCHEMA ${quoted}; CREATE TABLE ${quoted}.visit (visit_id integer PRIMARY KEY, body text)`);
      // A later session of this role searches that schema first.
      await query(url, `ALTER DATABASE "${new URL(url).pathname.slice(1)}" SET search_path = ${quoted}, public`);
    }
    const file = writeConfig(`${configHead()}tables:\n  - name: visit\n    primary_key: [visit_id]\n    direction: forward\n`);
    const { catalogs } = await readCatalogs(await testConfig(file, dbs));
    expect(catalogs.desktop?.tables.visit?.schema).toBe(odd);
    expect(catalogs.cloud?.tables.visit?.schema).toBe(odd);
  });
});
