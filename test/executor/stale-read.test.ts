import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';
import { connected, until, waiting } from '../harness/lock-waits.js';

describe('a step reads the source after every earlier run of the same step committed', () => {
  const dbs = useFreshDatabases('staleread');

  it('a step never merges a read older than the last committed run of the same step (a row that run copied is not mirror-deleted)', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 20);
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror' });
    expect((await apply(config)).exitCode).toBe(0);

    // Another run of forward job holds the step while the next one starts (here a session holding
    // bisync's state table, as a run does until it commits; a pooler queue or a slow link delays the
    // next run's lock the same way). The next run's state rows are in place (no bootstrap runs before
    // the step), and it runs without the probe: what waits is the step's lock.
    const first = await connected(dbs.cloudUrl);
    const other = await connected(dbs.cloudUrl);
    try {
      await first.query('BEGIN');
      await first.query('LOCK TABLE bisync.state IN EXCLUSIVE MODE');
      const running = apply(config, { direction: 'forward', tables: ['job'], probe: false });
      // The step's lock now waits on the cloud. A read opened before the lock is granted has its
      // snapshot by now (given a moment to arrive; a read that waits for the lock never comes).
      await until(dbs.cloudUrl, waiting('RowShareLock'));
      await until(
        dbs.desktopUrl,
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL AND state = 'idle in transaction'`,
        50,
      );
      // A desktop job is created, and the run holding the step copies it to the cloud and commits.
      await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (9999, 1, 'created meanwhile', 'open')`);
      await first.query(`INSERT INTO job (job_id, client_id, title, status, source) VALUES (9999, 1, 'created meanwhile', 'open', 'D')`);
      await first.query(`UPDATE bisync.state SET updated_at = clock_timestamp() WHERE table_name = 'job' AND direction = 'forward'`);
      await first.query('COMMIT');

      const report = await running;
      expect(report.steps[0]?.status).toBe('succeeded');
      // The desktop holds job 9999: the step must not delete it from the cloud.
      expect(await query(dbs.cloudUrl, `SELECT job_id FROM job WHERE job_id = 9999`)).toEqual([{ job_id: 9999 }]);
      expect(report.steps[0]?.deleted).toBe(0);
    } finally {
      for (const c of [first, other]) {
        await c.query('ROLLBACK').catch(() => undefined);
        await c.end();
      }
    }
  });
});
