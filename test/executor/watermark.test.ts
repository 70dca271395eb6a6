import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

const watermark = async (url: string, table: string, direction: string): Promise<string | null> =>
  (
    await query<{ w: string | null }>(
      url,
      `SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM bisync.state WHERE table_name = $1 AND direction = $2`,
      [table, direction],
    )
  )[0]?.w ?? null;

const mobileJob = (id: number, at: string): [string, unknown[]] => [
  `INSERT INTO job (job_id, client_id, title, status, source, created_at, updated_at) VALUES ($1::int, 1, 'mobile ' || $1::text, 'open', 'M', $2, $2)`,
  [id, at],
];

describe('seed 000: the watermark is the newest cursor value read and committed, never the clock', () => {
  const dbs = useFreshDatabases('wm000');

  it('stores the max cursor of the rows read, to the microsecond', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 4);
    const config = await jobsConfig(dbs);
    await apply(config, { direction: 'forward' });
    await query(dbs.cloudUrl, ...mobileJob(1001, '2026-01-02 03:04:05.123456+00'));
    await query(dbs.cloudUrl, ...mobileJob(1002, '2026-01-02 03:04:07.654321+00'));

    await apply(config, { direction: 'reverse' });

    expect(await watermark(dbs.desktopUrl, 'job', 'reverse')).toBe('2026-01-02T03:04:07.654321Z');
  });

  it('rows written on the source between the read and the commit are picked up by the next run', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.cloudUrl, ...mobileJob(1003, '2026-01-03 00:00:00+00'));
    const report = await apply(config, {
      direction: 'reverse',
      tables: ['job'],
      // While the step sits between its read and its commit, the phone writes two more rows.
      afterRead: async () => {
        await query(dbs.cloudUrl, ...mobileJob(1004, '2026-01-03 00:00:01+00'));
        await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (1005, 1, 'now', 'open', 'M')`);
      },
    });
    expect(report.steps[0]?.status).toBe('succeeded');
    expect(await watermark(dbs.desktopUrl, 'job', 'reverse')).toBe('2026-01-03T00:00:00.000000Z');

    await apply(config, { direction: 'reverse', tables: ['job'] });

    const ids = await query<{ job_id: number }>(dbs.desktopUrl, 'SELECT job_id FROM job WHERE job_id > 1000 ORDER BY job_id');
    expect(ids.map((r) => r.job_id)).toEqual([1001, 1002, 1003, 1004, 1005]);
  });

  it('the watermark is unchanged when nothing was read', async () => {
    const config = await jobsConfig(dbs, { lookback: '0s' });
    const before = await watermark(dbs.desktopUrl, 'job', 'reverse');
    // The steps themselves run (no probe): what the step does with nothing to read is the point here.
    const report = await apply(config, { direction: 'reverse', tables: ['job'], mode: 'incremental', probe: false });
    const afterFirst = await watermark(dbs.desktopUrl, 'job', 'reverse');
    expect(report.steps[0]?.read).toBeGreaterThanOrEqual(1);
    // Read again with nothing new at or after the watermark: a NULL-free max means "keep".
    await query(dbs.cloudUrl, `DELETE FROM job WHERE source = 'M'`);
    const empty = await apply(config, { direction: 'reverse', tables: ['job'], probe: false });
    expect(empty.steps[0]?.read).toBe(0);
    expect(await watermark(dbs.desktopUrl, 'job', 'reverse')).toBe(afterFirst);
    expect(afterFirst).not.toBeNull();
    expect(before).not.toBeNull();
  });
});

describe('late commits: a transaction that sets its cursor early and commits after a run is not lost', () => {
  const dbs = useFreshDatabases('wmlate');

  it('a row committed after the run, with a cursor older than rows that run read, is read by the next run', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 1, 1);
    // No lookback at all: only the in-flight clamp can save the late row.
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await apply(config);

    const late = new pg.Client({ connectionString: dbs.cloudUrl });
    await late.connect();
    try {
      await late.query('BEGIN');
      await late.query(`INSERT INTO job (job_id, client_id, title, status, source) VALUES (5001, 1, 'late', 'open', 'M')`); // updated_at = its start
      await new Promise((r) => setTimeout(r, 20));
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5002, 1, 'early commit', 'open', 'M')`);

      const first = await apply(config, { direction: 'reverse', tables: ['job'] });
      expect(first.steps[0]?.read).toBe(1); // 5002 only; 5001 is invisible until it commits

      await late.query('COMMIT');
    } finally {
      await late.end();
    }
    await apply(config, { direction: 'reverse', tables: ['job'] });

    const ids = await query<{ job_id: number }>(dbs.desktopUrl, 'SELECT job_id FROM job WHERE job_id > 5000 ORDER BY job_id');
    expect(ids.map((r) => r.job_id)).toEqual([5001, 5002]);
  });
});
