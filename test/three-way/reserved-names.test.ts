/**
 * A source table may hold columns named with bisync's reserved prefix as long as they are not synced
 * (check-catalog: "leave it out with a columns: list"; a column one side lacks is left out anyway).
 * The three-way full read must not mistake them for its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, withClient } from '../harness/fresh-databases.js';
import { jobBothWaysYaml } from './three-way-fixture.js';

let dbs: Awaited<ReturnType<typeof createDatabases>>;
beforeAll(async () => {
  dbs = await createDatabases('tw_reserved');
});
afterAll(async () => await dbs.drop());

describe('edits: both: columns bisync does not sync', () => {
  it('a full read of an edits: both table whose source has unsynced columns named __bisync_key and __bisync_present syncs it', async () => {
    await withClient(dbs.desktopUrl, async (c) => await c.query(`CREATE TABLE job (job_id integer PRIMARY KEY, title text NOT NULL, __bisync_key text, __bisync_present boolean)`));
    await withClient(dbs.cloudUrl, async (c) => await c.query(`CREATE TABLE job (job_id integer PRIMARY KEY, title text NOT NULL, source char(1))`));
    const config = await testConfig(
      writeConfig(jobBothWaysYaml({ maxDeleteFraction: 1 })),
      dbs,
    );
    await query(dbs.desktopUrl, `INSERT INTO job VALUES (1, 'one', 'x', false), (2, 'two', NULL, NULL)`);
    const first = await apply(config, { direction: 'forward' });
    expect(first.steps.map((s) => [s.status, s.inserted, s.error ?? null])).toEqual([['succeeded', 2, null]]);
    await query(dbs.desktopUrl, `DELETE FROM job WHERE job_id = 2`);
    await query(dbs.desktopUrl, `UPDATE job SET title = 'one, office' WHERE job_id = 1`);
    const second = await apply(config, { direction: 'forward', mode: 'full' });
    expect(second.steps.map((s) => [s.status, s.updated, s.deleted, s.error ?? null])).toEqual([['succeeded', 1, 1, null]]);
    expect(await query(dbs.cloudUrl, 'SELECT job_id, title FROM job ORDER BY job_id')).toEqual([{ job_id: 1, title: 'one, office' }]);
  });
});
