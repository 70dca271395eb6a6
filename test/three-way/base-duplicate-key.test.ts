/**
 * A unique violation on bisync's base can come from another run (a concurrent write: the step is run
 * again) or from the merge itself: two staged rows whose keys differ on the source but are one key on
 * the target (varchar '1' and '1 ' into a character(4) key) are recorded twice by one statement. That one is
 * the rows' doing: bisected like any row error, never retried as if another run were to blame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, withClient } from '../harness/fresh-databases.js';
import { jobBothWaysYaml } from './three-way-fixture.js';

let dbs: Awaited<ReturnType<typeof createDatabases>>;
beforeAll(async () => {
  dbs = await createDatabases('tw_basedup');
});
afterAll(async () => await dbs.drop());

describe('edits: both: a key the base would record twice in one merge', () => {
  it('two source keys the target holds as one key do not fail the step: the merge is bisected and the key is recorded once', async () => {
    await withClient(dbs.desktopUrl, async (c) => await c.query(`CREATE TABLE job (job_id varchar(4) PRIMARY KEY, title text NOT NULL)`));
    await withClient(dbs.cloudUrl, async (c) => await c.query(`CREATE TABLE job (job_id character(4) PRIMARY KEY, title text NOT NULL, source char(1))`));
    const config = await testConfig(
      writeConfig(jobBothWaysYaml({ deletes: 'keep' })),
      dbs,
    );
    // Both sides hold job 1 alike before the first run; the desktop also holds it as '1 '.
    await query(dbs.desktopUrl, `INSERT INTO job VALUES ('1', 'one'), ('1 ', 'one')`);
    await query(dbs.cloudUrl, `INSERT INTO job VALUES ('1', 'one', 'M')`);
    const report = await apply(config, { direction: 'forward', retries: 0 });
    expect(report.steps.map((s) => [s.status, s.error ?? null])).toEqual([['succeeded', null]]);
    // A varchar value and a character(4) value fingerprint differently (each side's own text; README,
    // edits: both, "columns of different types"), so the first run parks the key as insert-insert
    // instead of recording it in the base: once, whichever it is, and nothing is rejected.
    const base = await query<{ key: unknown }>(dbs.cloudUrl, `SELECT key FROM bisync.base WHERE table_name = 'job'`);
    const parked = await query<{ key: string[]; kind: string }>(dbs.cloudUrl, `SELECT key, kind FROM bisync.conflicts WHERE table_name = 'job'`);
    expect([...base.map((b) => ({ key: b.key, kind: 'base' })), ...parked]).toEqual([{ key: ['1'], kind: 'insert-insert' }]);
    expect(await query(dbs.cloudUrl, `SELECT 1 FROM bisync.rejects`)).toEqual([]);
    expect(await query(dbs.cloudUrl, `SELECT job_id, title FROM job`)).toEqual([{ job_id: '1   ', title: 'one' }]);
  });
});
