import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

const mobileJobs = async (url: string): Promise<number[]> =>
  (await query<{ job_id: number }>(url, `SELECT job_id FROM job WHERE source = 'M' ORDER BY 1`)).map((r) => r.job_id);

describe('the guard counts what this step did to the other side\'s rows, not what other sessions did meanwhile', () => {
  const dbs = useFreshDatabases('guardrace');

  it('a phone deleting its own row while a forward step runs does not refuse the step: it commits', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 200);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9001, 1, 'phone a', 'open', 'M'), (9002, 1, 'phone b', 'open', 'M')`);
    await query(dbs.desktopUrl, `UPDATE job SET title = title || ' (edited)' WHERE job_id <= 20`);

    let deletedDuringCopy = 0;
    let deletedAfterRead = 0;
    const report = await apply(config, {
      direction: 'forward',
      tables: ['job'],
      duringCopy: async () => {
        deletedDuringCopy += (await query(dbs.cloudUrl, `DELETE FROM job WHERE job_id = 9001 RETURNING 1`)).length;
      },
      afterRead: async () => {
        deletedAfterRead += (await query(dbs.cloudUrl, `DELETE FROM job WHERE job_id = 9002 RETURNING 1`)).length;
      },
    });

    expect([deletedDuringCopy, deletedAfterRead]).toEqual([1, 1]);
    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', updated: 20 });
    expect(await mobileJobs(dbs.cloudUrl)).toEqual([]);
    const edited = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM job WHERE title LIKE '%(edited)'`);
    expect(edited[0]?.n).toBe(20);
  });

  it('the guard still refuses when the step itself would change a row the other side owns, and the failed step reports no rolled-back writes', async () => {
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9010, 1, 'phone c', 'open', 'M')`);
    // A trigger that rewrites phone rows whenever rows arrive: the count stays the same, the rows do not.
    await query(
      dbs.cloudUrl,
      `CREATE FUNCTION touch_mobile_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE public.job SET status = 'closed by office sync' WHERE source = 'M'; RETURN NULL; END $$;
       CREATE TRIGGER touch_mobile_rows AFTER INSERT ON job FOR EACH STATEMENT EXECUTE FUNCTION touch_mobile_rows();`,
    );
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (500, 1, 'new desktop job', 'open')`);

    const report = await apply(await jobsConfig(dbs), { direction: 'forward', tables: ['job'] });

    expect(report.exitCode).toBe(4);
    expect(report.steps[0]).toMatchObject({ status: 'refused', inserted: 0, updated: 0 });
    expect(report.steps[0]?.error).toMatch(/would change rows on cloud owned by the other side/);
    expect(await query(dbs.cloudUrl, `SELECT status FROM job WHERE job_id = 9010`)).toEqual([{ status: 'open' }]);
    expect(await query(dbs.cloudUrl, `SELECT job_id FROM job WHERE job_id = 500`)).toEqual([]);
    await query(dbs.cloudUrl, 'DROP TRIGGER touch_mobile_rows ON job');
  });
});
