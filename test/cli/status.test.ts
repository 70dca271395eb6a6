import { describe, expect, it } from 'vitest';
import type { StepStatus } from '../../src/commands/status.js';
import { apply, envFor, query, runCli, testConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

describe('bisync status', () => {
  const dbs = useFreshDatabases('status');
  let file = '';

  const status = async (expectedCode = 0): Promise<StepStatus[]> => {
    const result = await runCli(['status', '--json', '--config', file], envFor(dbs));
    expect(result.code).toBe(expectedCode);
    return (JSON.parse(result.stdout) as { steps: StepStatus[] }).steps;
  };
  const step = (steps: StepStatus[], table: string, direction: string): StepStatus | undefined =>
    steps.find((s) => s.table === table && s.direction === direction);

  it('before any run: every step has never run, and status itself creates nothing', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 10);
    file = jobsConfigFile();

    const steps = await status();

    expect(steps.map((s) => `${s.table} ${s.direction}`)).toEqual(['client forward', 'job forward', 'client reverse', 'job reverse']);
    expect(step(steps, 'job', 'forward')).toMatchObject({ lastRun: null, watermark: null, waiting: null, pendingRejects: 0 });
    const schemas = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'bisync'`);
    expect(schemas[0]?.n).toBe(0);
  });

  it('after runs: watermark, last result and counts, pending rejects, and rows waiting on the source', async () => {
    const config = testConfig;
    await apply(await config(file, dbs));
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (501, 1, 'a', 'open', 'M'), (502, 1, 'b', 'open', 'M')`);
    await apply(await config(file, dbs), { direction: 'reverse' });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at) VALUES (503, 1, 'c', 'open', 'M', now() + interval '1 minute')`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (99, 1, 'orphan', 'open')`);
    await query(dbs.desktopUrl, `ALTER TABLE job DROP CONSTRAINT job_client_id_fkey`);
    await query(dbs.desktopUrl, `UPDATE job SET client_id = 12345 WHERE job_id = 99`);
    await apply(await config(file, dbs), { direction: 'forward' });

    // A pending reject needs the owner: status exits 1.
    const steps = await status(1);

    expect(step(steps, 'job', 'forward')).toMatchObject({ pendingRejects: 1, waiting: null, lastRun: { status: 'succeeded', mode: 'full', rejected: 1 } });
    const reverse = step(steps, 'job', 'reverse');
    expect(reverse?.lastRun).toMatchObject({ status: 'succeeded', read: 2, inserted: 2 });
    expect(reverse?.watermark).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(reverse?.waiting).toBe(1);

    const text = await runCli(['status', '--config', file], envFor(dbs));
    expect(text.stdout).toMatch(/job\s+reverse \(cloud → desktop\)/);
    expect(text.stdout).toMatch(/full compare/);
  });
});
