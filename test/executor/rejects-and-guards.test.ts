import { describe, expect, it } from 'vitest';
import { apply, envFor, query, runCli } from '../harness/bisync.js';
import { createDatabases, useFreshDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, jobsConfigFile, seedDesktop } from './jobs-fixture.js';

type Reject = { key: Record<string, string>; reason: string; error_code: string | null; attempts: number };
const rejects = async (url: string): Promise<Reject[]> =>
  await query<Reject>(url, `SELECT key, reason, error_code, attempts FROM bisync.rejects ORDER BY key::text`);

describe('rows the target refuses go to rejects without blocking the table, and are retried', () => {
  const dbs = useFreshDatabases('rejects');

  it('a child row whose parent is missing lands in rejects, the rest commits, and it applies once the parent exists', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 50);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (50, 'not synced yet')`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (700, 50, 'orphan a', 'open'), (701, 50, 'orphan b', 'open'), (702, 1, 'fine', 'open')`);

    const first = await apply(config, { direction: 'forward', tables: ['job'] });

    expect(first.exitCode).toBe(0);
    expect(first.steps[0]).toMatchObject({ status: 'succeeded', inserted: 1, rejected: 2 });
    expect(await rejects(dbs.cloudUrl)).toEqual([
      { key: { job_id: '700' }, reason: 'error', error_code: '23503', attempts: 1 },
      { key: { job_id: '701' }, reason: 'error', error_code: '23503', attempts: 1 },
    ]);

    const second = await apply(config, { direction: 'forward' });
    // Both rejects were read again from the desktop (the full read has them) and tried: retried 2.
    expect(second.steps.find((s) => s.table === 'job')).toMatchObject({ retried: 2, inserted: 2, rejected: 0 });
    expect(await rejects(dbs.cloudUrl)).toEqual([]);
    const ids = await query<{ job_id: number }>(dbs.cloudUrl, 'SELECT job_id FROM job WHERE job_id >= 700 ORDER BY 1');
    expect(ids.map((r) => r.job_id)).toEqual([700, 701, 702]);
  });

  it('a rejected row is never both skipped by the watermark and absent from rejects: it applies after the watermark has passed it', async () => {
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (777, 'only on the phone', 'X')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at) VALUES (800, 777, 'needs client 777', 'open', 'M', now() - interval '1 hour')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (801, 1, 'fine', 'open', 'M')`);

    const first = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(first.steps[0]).toMatchObject({ inserted: 1, rejected: 1 });
    expect((await rejects(dbs.desktopUrl)).map((r) => r.key)).toEqual([{ job_id: '800' }]);
    // The watermark moved past job 800's cursor: an incremental read will not see it again.
    const passed = await query<{ passed: boolean }>(
      dbs.desktopUrl,
      `SELECT watermark > now() - interval '30 minutes' AS passed FROM bisync.state WHERE table_name = 'job' AND direction = 'reverse'`,
    );
    expect(passed[0]?.passed).toBe(true);

    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (777, 'created on the desktop')`);
    const second = await apply(config, { direction: 'reverse', tables: ['job'] });

    // With a reject pending the step reads in full, so job 800 is read again from the cloud.
    expect(second.steps[0]).toMatchObject({ mode: 'full', retried: 1, inserted: 1, rejected: 0 });
    expect(second.steps[0]?.reason).toMatch(/1 rejected row pending: every row is read/);
    expect(await rejects(dbs.desktopUrl)).toEqual([]);
  });
});

describe('write: insert-only reports a differing existing row as a conflict instead of dropping it', () => {
  const dbs = useFreshDatabases('insonly');

  it('the desktop row is kept, the conflict is in rejects with reason conflict, and the exit code is 0', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 1, 3);
    const config = await jobsConfig(dbs, { jobExtra: '    reverse: { write: insert-only }' });
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (3, 1, 'phone wrote key 3 too', 'open', 'M') ON CONFLICT (job_id) DO UPDATE SET title = EXCLUDED.title, source = 'M', updated_at = now()`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (4, 1, 'new on the phone', 'open', 'M')`);

    const report = await apply(config, { direction: 'reverse', tables: ['job'] });

    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ inserted: 1, updated: 0, conflicts: 1, rejected: 1 });
    expect((await query<{ title: string }>(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 3'))[0]?.title).toBe('job 3');
    expect(await rejects(dbs.desktopUrl)).toEqual([{ key: { job_id: '3' }, reason: 'conflict', error_code: null, attempts: 1 }]);
  });
});

describe('guards: a step that would lose the other side\'s rows, or delete too much, is refused (exit 4)', () => {
  const dbs = useFreshDatabases('guard');

  it('a merge that would lower the count of mobile-owned rows is rolled back with exit 4', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 1, 5);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9001, 1, 'mobile', 'open', 'M')`);
    // A misbehaving trigger on the cloud deletes phone rows whenever rows arrive. (bisync pins
    // search_path to pg_catalog, so a trigger names its tables with their schema, as it should.)
    await query(
      dbs.cloudUrl,
      `CREATE FUNCTION eat_mobile_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.job WHERE source = 'M'; RETURN NULL; END $$;
       CREATE TRIGGER eat_mobile_rows AFTER INSERT ON job FOR EACH STATEMENT EXECUTE FUNCTION eat_mobile_rows();`,
    );
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (6, 1, 'new desktop job', 'open')`);

    const cli = await runCli(['apply', '--config', jobsConfigFile(), '--direction', 'forward', '--table', 'job', '--log-level', 'error'], envFor(dbs));

    expect(cli.code).toBe(4);
    expect(cli.stdout).toMatch(/refused: rows on cloud owned by the other side would drop from 1 to 0/);
    const rows = await query<{ job_id: number }>(dbs.cloudUrl, 'SELECT job_id FROM job WHERE job_id IN (6, 9001) ORDER BY 1');
    expect(rows.map((r) => r.job_id)).toEqual([9001]);
    await query(dbs.cloudUrl, 'DROP TRIGGER eat_mobile_rows ON job');
  });

  it('deletes: mirror removes only rows forward owns, and refuses beyond max_delete_fraction without --allow-deletes', async () => {
    const mirror = await createDatabases('mirror');
    try {
      await createJobsSchema(mirror);
      await seedDesktop(mirror, 1, 100);
      const config = await jobsConfig(mirror, { jobExtra: '    deletes: mirror' });
      await apply(config, { direction: 'forward' });
      await query(mirror.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5000, 1, 'mobile', 'open', 'M')`);

      await query(mirror.desktopUrl, 'DELETE FROM job WHERE job_id <= 5');
      const small = await apply(config, { direction: 'forward', tables: ['job'] });
      expect(small.steps[0]).toMatchObject({ status: 'succeeded', deleted: 5 });

      await query(mirror.desktopUrl, 'DELETE FROM job WHERE job_id <= 50');
      const big = await apply(config, { direction: 'forward', tables: ['job'] });
      expect(big.exitCode).toBe(4);
      expect(big.steps[0]?.status).toBe('refused');
      expect(await countJobs(mirror)).toBe(96);

      const allowed = await apply(config, { direction: 'forward', tables: ['job'], allowDeletes: true });
      expect(allowed.steps[0]).toMatchObject({ status: 'succeeded', deleted: 45 });
      expect(await countJobs(mirror)).toBe(51);
      expect((await query<{ n: number }>(mirror.cloudUrl, `SELECT count(*)::int AS n FROM job WHERE source = 'M'`))[0]?.n).toBe(1);
    } finally {
      await mirror.drop();
    }
  });
});

const countJobs = async (dbs: TestDatabases): Promise<number> =>
  (await query<{ n: number }>(dbs.cloudUrl, 'SELECT count(*)::int AS n FROM job'))[0]?.n ?? -1;
