import { describe, expect, it } from 'vitest';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

type Reject = { key: Record<string, string>; error_code: string | null };
const rejects = async (url: string): Promise<Reject[]> =>
  await query<Reject>(url, `SELECT key, error_code FROM bisync.rejects ORDER BY key::text`);
const cloudJobs = async (url: string, where: string): Promise<number[]> =>
  (await query<{ job_id: number }>(url, `SELECT job_id FROM job WHERE ${where} ORDER BY 1`)).map((r) => r.job_id);

describe('rows that cannot be applied are rejected one by one and never block the table (SPEC §2.6)', () => {
  const dbs = useFreshDatabases('rowerrors');

  it('a row a trigger on the target refuses (RAISE, P0001) is rejected; the table\'s other rows sync', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 10);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `
      CREATE FUNCTION refuse_titles() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.title = 'refuse me' THEN RAISE EXCEPTION 'job % is not allowed here', NEW.job_id; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_titles BEFORE INSERT OR UPDATE ON job FOR EACH ROW EXECUTE FUNCTION refuse_titles();`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (100, 1, 'fine', 'open'), (101, 1, 'refuse me', 'open'), (102, 2, 'also fine', 'open')`);

    const report = await apply(config, { direction: 'forward', tables: ['job'] });

    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', inserted: 2, rejected: 1 });
    expect(await rejects(dbs.cloudUrl)).toEqual([{ key: { job_id: '101' }, error_code: 'P0001' }]);
    expect(await cloudJobs(dbs.cloudUrl, 'job_id >= 100')).toEqual([100, 102]);
    await query(dbs.cloudUrl, `DROP TRIGGER refuse_titles ON job; DELETE FROM bisync.rejects`);
  });

  it('a row that breaks a deferred foreign key (checked only at COMMIT) is rejected per batch; the table\'s other rows sync', async () => {
    await query(dbs.cloudUrl, `ALTER TABLE job DROP CONSTRAINT job_client_id_fkey,
      ADD CONSTRAINT job_client_id_fkey FOREIGN KEY (client_id) REFERENCES client DEFERRABLE INITIALLY DEFERRED`);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (60, 'not on the cloud yet')`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (200, 60, 'waits for client 60', 'open'), (201, 1, 'fine', 'open')`);

    const report = await apply(await jobsConfig(dbs), { direction: 'forward', tables: ['job'] });

    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', rejected: 1 });
    expect(await rejects(dbs.cloudUrl)).toEqual([{ key: { job_id: '200' }, error_code: '23503' }]);
    expect(await cloudJobs(dbs.cloudUrl, 'job_id >= 200')).toEqual([201]);
  });

  it('a key out of range for the target\'s type is rejected, and deletes: mirror still counts and deletes (no 22003 for the table)', async () => {
    await query(dbs.desktopUrl, `CREATE TABLE reading (reading_id bigint PRIMARY KEY, value text)`);
    await query(dbs.cloudUrl, `CREATE TABLE reading (reading_id integer PRIMARY KEY, value text, source char(1))`);
    await query(dbs.desktopUrl, `INSERT INTO reading SELECT i, 'r' || i FROM generate_series(1, 30) i`);
    const config = await testConfig(
      writeConfig(`
${configHead()}tables:
  - name: reading
    primary_key: [reading_id]
    direction: forward
    origin: { column: source, forward: D, reverse: M }
    deletes: mirror
`),
      dbs,
    );
    await apply(config);
    await query(dbs.desktopUrl, `INSERT INTO reading VALUES (5000000000, 'too big for the cloud'); DELETE FROM reading WHERE reading_id = 30`);

    const report = await apply(config);

    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', rejected: 1, deleted: 1 });
    expect(await query(dbs.cloudUrl, `SELECT key, error_code FROM bisync.rejects WHERE table_name = 'reading'`)).toEqual([
      { key: { reading_id: '5000000000' }, error_code: '22003' },
    ]);
    expect(await query(dbs.cloudUrl, `SELECT count(*)::int AS n, max(reading_id) AS top FROM reading`)).toEqual([{ n: 29, top: 29 }]);
  });
});
