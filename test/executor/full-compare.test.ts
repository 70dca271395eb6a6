import { describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

const versions = async (url: string): Promise<string> =>
  (await query<{ v: string }>(url, `SELECT string_agg(job_id || ':' || xmin::text, ',' ORDER BY job_id) AS v FROM job`))[0]?.v ?? '';

describe('seed 003: tables without cursor columns are compared in full, honestly reported, and only changed rows written', () => {
  const dbs = useFreshDatabases('full003');

  it('the desktop side is read in full and the report says why', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 5, 500);
    const report = await apply(await jobsConfig(dbs), { direction: 'forward' });
    const job = report.steps.find((s) => s.table === 'job');
    expect(job?.mode).toBe('full');
    expect(job?.reason).toMatch(/no cursor columns on desktop/);
    expect(job?.read).toBe(500);
    expect(job?.inserted).toBe(500);
  });

  it('a second run with nothing changed writes zero rows and says so', async () => {
    const before = await versions(dbs.cloudUrl);
    const report = await apply(await jobsConfig(dbs), { direction: 'forward' });
    const job = report.steps.find((s) => s.table === 'job');
    // Compared by bucket checksums first (SPEC §8): every row compared, none moved.
    expect(job).toMatchObject({ read: 0, inserted: 0, updated: 0, unchanged: 500 });
    expect(job?.reason).toMatch(/no cursor columns on desktop.*checksum-first/);
    // Not one cloud row got a new version: nothing was rewritten.
    expect(await versions(dbs.cloudUrl)).toBe(before);
  });

  it('after one desktop edit exactly that row is written', async () => {
    await query(dbs.desktopUrl, `UPDATE job SET status = 'closed' WHERE job_id = 42`);
    const before = await query<{ job_id: number; xmin: string }>(dbs.cloudUrl, 'SELECT job_id, xmin::text FROM job ORDER BY job_id');
    const report = await apply(await jobsConfig(dbs), { direction: 'forward' });
    const after = await query<{ job_id: number; xmin: string }>(dbs.cloudUrl, 'SELECT job_id, xmin::text FROM job ORDER BY job_id');
    expect(report.steps.find((s) => s.table === 'job')).toMatchObject({ updated: 1, unchanged: 499 });
    const rewritten = after.filter((row, i) => row.xmin !== before[i]?.xmin).map((r) => r.job_id);
    expect(rewritten).toEqual([42]);
  });
});

describe('seed 001: no hidden window or limit — a first run or a run after a gap moves every row', () => {
  const dbs = useFreshDatabases('gap001');

  it('the first reverse run over 25,000+ mobile rows moves them all, and a run after a long gap catches up fully', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 1, 1);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source, created_at, updated_at)
       SELECT 100000 + i, 1, 'mobile ' || i, 'open', 'M', t, t
         FROM generate_series(1, 25500) i, LATERAL (SELECT timestamptz '2025-01-01' + i * interval '1 minute' AS t) ts`,
    );

    const first = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(first.steps[0]).toMatchObject({ mode: 'full', read: 25500, inserted: 25500 });

    // Thirty days pass without a sync; the phones write 30,000 more rows spread over that gap.
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source, created_at, updated_at)
       SELECT 200000 + i, 1, 'later ' || i, 'open', 'M', t, t
         FROM generate_series(1, 30000) i, LATERAL (SELECT timestamptz '2025-03-01' + i * interval '86 seconds' AS t) ts`,
    );
    const second = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(second.steps[0]).toMatchObject({ mode: 'incremental', inserted: 30000 });

    const counts = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM job WHERE job_id > 100000');
    expect(counts[0]?.n).toBe(55500);
  });
});
