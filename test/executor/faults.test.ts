import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';
import { killBisyncBackends } from '../reliability/kill-sessions.js';

const snapshot = async (url: string): Promise<{ rows: string; state: string }> => ({
  rows: (await query<{ v: string }>(url, `SELECT coalesce(md5(string_agg(j::text, ',' ORDER BY job_id)), '') AS v FROM job j`))[0]?.v ?? '',
  state: (await query<{ v: string }>(url, `SELECT coalesce(string_agg(table_name || direction || coalesce(watermark::text, '-'), ','), '') AS v FROM bisync.state`))[0]?.v ?? '',
});

describe('a connection killed mid-step leaves the target exactly as before; the rerun completes', () => {
  const dbs = useFreshDatabases('faults');

  it('killed during the COPY from the source: target data and watermark unchanged, rerun moves every row once', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 10);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source) SELECT 10000 + i, 1, repeat('x', 200), 'open', 'M' FROM generate_series(1, 20000) i`,
    );
    const before = await snapshot(dbs.desktopUrl);

    const report = await apply(config, {
      direction: 'reverse',
      tables: ['job'],
      retries: 0,
      duringCopy: async () => {
        expect(await killBisyncBackends(dbs.cloudUrl)).toBeGreaterThan(0);
      },
    });

    expect(report.steps[0]?.status).toBe('failed');
    expect(report.exitCode).toBe(1);
    expect(await snapshot(dbs.desktopUrl)).toEqual(before);

    const rerun = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(rerun.steps[0]).toMatchObject({ status: 'succeeded', inserted: 20000 });
    const counts = await query<{ n: number; d: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS d FROM job');
    expect(counts[0]).toEqual({ n: 20010, d: 20010 });
  });

  it('killed during the merge on the target: target data and watermark unchanged, the failure is recorded, rerun completes', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) SELECT 50000 + i, 1, 'm', 'open', 'M' FROM generate_series(1, 500) i`);
    const before = await snapshot(dbs.desktopUrl);

    const report = await apply(config, {
      direction: 'reverse',
      tables: ['job'],
      retries: 0,
      afterRead: async () => {
        expect(await killBisyncBackends(dbs.desktopUrl)).toBeGreaterThan(0);
      },
    });

    expect(report.steps[0]?.status).toBe('failed');
    expect(await snapshot(dbs.desktopUrl)).toEqual(before);
    const failed = await query<{ n: number }>(dbs.desktopUrl, `SELECT count(*)::int AS n FROM bisync.runs WHERE status = 'failed'`);
    expect(failed[0]?.n).toBeGreaterThanOrEqual(1);

    const rerun = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(rerun.steps[0]).toMatchObject({ status: 'succeeded', inserted: 500 });
    const counts = await query<{ n: number; d: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS d FROM job');
    expect(counts[0]).toEqual({ n: 20510, d: 20510 });
  });

  it('a failed step does not stop the others, whose commits stand (exit 1)', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (900, 'new client')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (60001, 1, 'm', 'open', 'M')`);

    const report = await apply(config, {
      retries: 0,
      afterRead: async (step) => {
        if (step.table === 'client' && step.direction === 'forward') await killBisyncBackends(dbs.cloudUrl);
      },
    });

    expect(report.exitCode).toBe(1);
    expect(report.steps.map((s) => `${s.table} ${s.direction} ${s.status}`)).toEqual([
      'client forward failed',
      'job forward succeeded',
      'client reverse succeeded',
      'job reverse succeeded',
    ]);
    const job = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM job WHERE job_id = 60001');
    expect(job[0]?.n).toBe(1);
  });

  it('a transient failure (connection killed) is retried within the same run, and the retry commits exactly once', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) SELECT 70000 + i, 1, 'r', 'open', 'M' FROM generate_series(1, 50) i`);
    let kills = 0;
    const report = await apply(config, {
      direction: 'reverse',
      tables: ['job'],
      afterRead: async () => {
        if (kills++ === 0) await killBisyncBackends(dbs.desktopUrl);
      },
    });
    expect(report.steps[0]?.error).toBeUndefined();
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', inserted: 50, retries: 1 });
    expect(report.exitCode).toBe(0);
    const counts = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM job WHERE job_id > 70000');
    expect(counts[0]?.n).toBe(50);
  });

  it('a permanent failure (permission denied) is not retried', async () => {
    await query(dbs.desktopUrl, `DO $$ BEGIN CREATE ROLE bisync_reader LOGIN PASSWORD 'reader-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    // The role owns bisync's state (bisync refuses state another role owns) but may only read the synced tables.
    await query(
      dbs.desktopUrl,
      `GRANT SELECT ON ALL TABLES IN SCHEMA public TO bisync_reader; ALTER SCHEMA bisync OWNER TO bisync_reader;
       ALTER TABLE bisync.state OWNER TO bisync_reader; ALTER TABLE bisync.runs OWNER TO bisync_reader; ALTER TABLE bisync.rejects OWNER TO bisync_reader;
       ALTER TABLE bisync.base OWNER TO bisync_reader; ALTER TABLE bisync.conflicts OWNER TO bisync_reader`,
    );
    const url = new URL(dbs.desktopUrl);
    url.username = 'bisync_reader';
    url.password = 'reader-pw';
    const config = await jobsConfig({ ...dbs, desktopUrl: url.toString() });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (80001, 1, 'p', 'open', 'M')`);

    const report = await apply(config, { direction: 'reverse', tables: ['job'] });

    expect(report.steps[0]?.status).toBe('failed');
    expect(report.steps[0]?.errorCode).toBe('42501');
    expect(report.steps[0]?.retries).toBeUndefined();
  });
});

describe('checksum-first: a connection killed mid-step leaves the target exactly as before; the rerun completes', () => {
  const dbs = useFreshDatabases('faultsck');

  it('checksum-first: killed during the COPY of the differing buckets: target data and watermark unchanged, rerun writes each change once', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 3000);
    const config = await jobsConfig(dbs);
    await apply(config, { direction: 'forward' });
    await query(dbs.desktopUrl, `UPDATE job SET title = title || ' (edited)' WHERE job_id % 30 = 0`);
    const before = await snapshot(dbs.cloudUrl);

    const report = await apply(config, {
      direction: 'forward',
      tables: ['job'],
      retries: 0,
      duringCopy: async () => {
        expect(await killBisyncBackends(dbs.cloudUrl)).toBeGreaterThan(0);
      },
    });

    expect(report.steps[0]?.reason).toMatch(/checksum-first/);
    expect(report.steps[0]?.status).toBe('failed');
    expect(await snapshot(dbs.cloudUrl)).toEqual(before);

    const rerun = await apply(config, { direction: 'forward', tables: ['job'] });
    expect(rerun.steps[0]).toMatchObject({ status: 'succeeded', updated: 100, inserted: 0, unchanged: 2900 });
    expect(rerun.steps[0]?.checksum?.differing).toBeGreaterThan(0);
    const edited = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM job WHERE title LIKE '% (edited)' AND source = 'D'`);
    expect(edited[0]?.n).toBe(100);
  });
});
