import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

type Job = { job_id: number; title: string; status: string | null; source: string | null };

const jobOnCloud = async (url: string, id: number): Promise<Job | undefined> =>
  (await query<Job>(url, 'SELECT job_id, title, status, source FROM job WHERE job_id = $1', [id]))[0];

describe('seed 002: forward never deletes or overwrites rows owned by the mobile side', () => {
  const dbs = useFreshDatabases('own002');

  it('a mobile-created cloud row survives forward full runs', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 20);
    const config = await jobsConfig(dbs);
    await apply(config, { direction: 'forward' });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (99999, 1, 'mobile job', 'Active', 'M')`);

    const report = await apply(config, { direction: 'forward', mode: 'full' });

    expect(report.exitCode).toBe(0);
    expect(await jobOnCloud(dbs.cloudUrl, 99999)).toEqual({ job_id: 99999, title: 'mobile job', status: 'Active', source: 'M' });
    const counts = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM job`);
    expect(counts[0]?.n).toBe(21);
  });

  it('a mobile row and a desktop update both stand after one forward run', async () => {
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (200, 1, 'mobile 200', 'Active', 'M')`);
    await query(dbs.desktopUrl, `UPDATE job SET status = 'Completed' WHERE job_id = 5`);

    const report = await apply(await jobsConfig(dbs), { direction: 'forward' });

    const job = report.steps.find((s) => s.table === 'job');
    expect(job?.updated).toBe(1);
    expect(await jobOnCloud(dbs.cloudUrl, 5)).toMatchObject({ status: 'Completed', source: 'D' });
    expect(await jobOnCloud(dbs.cloudUrl, 200)).toMatchObject({ title: 'mobile 200', source: 'M' });
  });

  it('a mobile-created cloud row survives forward incremental runs (desktop with a cursor column)', async () => {
    const own = await createDatabases('own002inc');
    try {
      await createJobsSchema(own, { desktopCursor: true });
      await seedDesktop(own, 2, 10);
      const config = await jobsConfig(own, { desktopCursor: true });
      await apply(config, { direction: 'forward' });
      await query(own.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (777, 1, 'mobile', 'Active', 'M')`);
      // The desktop now creates the same key: forward must not overwrite the mobile row.
      await query(own.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (777, 1, 'desktop 777', 'Open')`);

      const report = await apply(config, { direction: 'forward' });

      const job = report.steps.find((s) => s.table === 'job');
      expect(job?.mode).toBe('incremental');
      expect(job?.protected).toBe(1);
      expect(await jobOnCloud(own.cloudUrl, 777)).toEqual({ job_id: 777, title: 'mobile', status: 'Active', source: 'M' });
    } finally {
      await own.drop();
    }
  });
});

describe('seed 003: ownership policy for rows edited on the other side', () => {
  const dbs = useFreshDatabases('own003');

  it('a mobile-owned row edited on the desktop is never pushed over the mobile version', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (99999, 1, 'mobile', 'Active', 'M')`);
    await apply(config, { direction: 'reverse' });
    await query(dbs.desktopUrl, `UPDATE job SET status = 'Completed' WHERE job_id = 99999`);

    const report = await apply(config, { direction: 'forward' });

    expect(report.steps.find((s) => s.table === 'job')?.protected).toBe(1);
    expect(await jobOnCloud(dbs.cloudUrl, 99999)).toEqual({ job_id: 99999, title: 'mobile', status: 'Active', source: 'M' });
  });

  it('a desktop-owned row edited on the cloud is restored from the desktop by the next forward run (desktop wins its own rows)', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.cloudUrl, `UPDATE job SET title = 'edited on the phone' WHERE job_id = 3`);

    const reverse = await apply(config, { direction: 'reverse' });
    expect(reverse.steps.find((s) => s.table === 'job')?.inserted).toBe(0);
    const desktop = await query<{ title: string }>(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 3');
    expect(desktop[0]?.title).toBe('job 3');

    await apply(config, { direction: 'forward' });
    expect(await jobOnCloud(dbs.cloudUrl, 3)).toMatchObject({ title: 'job 3', source: 'D' });
  });
});
