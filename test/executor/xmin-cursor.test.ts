import { describe, expect, it } from 'vitest';
import { planCommand } from '../../src/commands/plan.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigYaml, seedDesktop } from './jobs-fixture.js';

// SPEC §8 "Incremental without timestamps": the desktop tables have no cursor columns; with
// `timestamps: { desktop: xmin }` forward reads only rows written since the last read's snapshot.

async function xminConfig(dbs: TestDatabases): Promise<ResolvedConfig> {
  const yaml = jobsConfigYaml().replace('timestamps: { cloud: [updated_at, created_at] }', 'timestamps: { desktop: xmin, cloud: [updated_at, created_at] }');
  expect(yaml).toContain('desktop: xmin');
  return await testConfig(writeConfig(yaml), dbs);
}

async function forwardJob(config: ResolvedConfig) {
  // The steps run (no probe): these tests are about which rows the xmin read takes (the probe's own
  // tests are in test/executor/probe.test.ts).
  const report = await apply(config, { direction: 'forward', tables: ['client', 'job'], probe: false });
  const step = report.steps.find((s) => s.table === 'job');
  expect(step?.status, step?.error).toBe('succeeded');
  return step as NonNullable<typeof step>;
}

const cloudJobs = async (dbs: TestDatabases): Promise<{ job_id: number; title: string }[]> =>
  await query(dbs.cloudUrl, 'SELECT job_id, title FROM job ORDER BY job_id');
const desktopJobs = async (dbs: TestDatabases): Promise<{ job_id: number; title: string }[]> =>
  await query(dbs.desktopUrl, 'SELECT job_id, title FROM job ORDER BY job_id');

describe('timestamps: { desktop: xmin } reads only rows written since the last read', () => {
  const dbs = useFreshDatabases('xmin');

  it('xmin: the first run reads in full, a no-change run reads nothing, and an edit is read alone', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 50);
    const config = await xminConfig(dbs);
    const first = await forwardJob(config);
    expect(first.mode).toBe('full');
    expect(first.reason).toMatch(/xmin on desktop: no read snapshot saved yet/);
    expect(first.read).toBe(50);

    const still = await forwardJob(config);
    expect(still.mode).toBe('incremental');
    expect(still.reason).toMatch(/xmin on desktop: rows written by transactions from \d+ on/);
    expect(still.read).toBe(0);
    const plan = await planCommand(config, { direction: 'forward', tables: ['job'], mode: 'auto' });
    expect(plan.steps[0]?.statements.find((s) => s.kind === 'copy-out')?.sql).toMatch(/f\.xmin::text::bigint/);
    // The state keeps no watermark for this step: the read snapshot is its cursor.
    const [state] = await query<{ watermark: string | null; xmin_cursor: { xmin: string } | null }>(
      dbs.cloudUrl,
      `SELECT watermark, xmin_cursor FROM bisync.state WHERE table_name = 'job' AND direction = 'forward'`,
    );
    expect(state?.watermark).toBeNull();
    expect(state?.xmin_cursor?.xmin).toMatch(/^\d+$/);

    await query(dbs.desktopUrl, `UPDATE job SET title = 'edited' WHERE job_id = 7`);
    const edited = await forwardJob(config);
    expect(edited.read).toBe(1);
    expect(edited.updated).toBe(1);
    expect(await cloudJobs(dbs)).toEqual(await desktopJobs(dbs));
  });

  it('xmin: a transaction that began before the last read and commits after it is read by the next run', async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    await withClient(dbs.desktopUrl, async (late) => {
      await late.query('BEGIN');
      await late.query(`INSERT INTO job (job_id, client_id, title, status) VALUES (201, 1, 'late insert', 'open')`);
      await late.query(`UPDATE job SET title = 'late update' WHERE job_id = 3`);
      // Another transaction commits a row while the late one is still open; the run reads that one.
      await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (202, 1, 'on time', 'open')`);
      const during = await forwardJob(config);
      expect(during.read).toBe(1);
      await late.query('COMMIT');
    });
    const after = await forwardJob(config);
    expect(after.read).toBeGreaterThanOrEqual(2);
    expect(await cloudJobs(dbs)).toEqual(await desktopJobs(dbs));
    expect((await cloudJobs(dbs)).find((j) => j.job_id === 3)?.title).toBe('late update');
  });

  it('xmin: rows written in subtransactions are read, including by a transaction open during the read', async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query('BEGIN');
      await c.query(`INSERT INTO job (job_id, client_id, title, status) VALUES (301, 1, 'top level', 'open')`);
      await c.query('SAVEPOINT a');
      await c.query(`INSERT INTO job (job_id, client_id, title, status) VALUES (302, 1, 'in a subtransaction', 'open')`);
      await c.query('RELEASE SAVEPOINT a');
      await c.query('SAVEPOINT b');
      await c.query(`INSERT INTO job (job_id, client_id, title, status) VALUES (303, 1, 'rolled back', 'open')`);
      await c.query('ROLLBACK TO SAVEPOINT b');
      await forwardJob(config);
      await c.query('SAVEPOINT c');
      await c.query(`UPDATE job SET title = 'updated in a subtransaction' WHERE job_id = 4`);
      await c.query('RELEASE SAVEPOINT c');
      await c.query('COMMIT');
    });
    await forwardJob(config);
    const cloud = await cloudJobs(dbs);
    expect(cloud).toEqual(await desktopJobs(dbs));
    expect(cloud.map((j) => j.job_id)).toEqual(expect.arrayContaining([301, 302]));
    expect(cloud.map((j) => j.job_id)).not.toContain(303);
  });

  it("xmin: rows bisync's own reverse step writes on the desktop are read back by forward and change nothing", async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (100001, 1, 'from the phone', 'open', 'M')`);
    const reverse = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(reverse.steps[0]?.inserted).toBe(1);
    const forward = await forwardJob(config);
    expect(forward.read).toBe(1);
    expect(forward.inserted + forward.updated).toBe(0);
    const [row] = await query<{ source: string }>(dbs.cloudUrl, 'SELECT source FROM job WHERE job_id = 100001');
    expect(row?.source).toBe('M');
    expect((await forwardJob(config)).read).toBe(0);
  });

  it('xmin: VACUUM FREEZE neither hides a changed row nor brings back old ones', async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    await query(dbs.desktopUrl, `UPDATE job SET title = 'edited before the freeze' WHERE job_id = 11`);
    await query(dbs.desktopUrl, 'VACUUM (FREEZE) job');
    const [frozen] = await query<{ n: number }>(dbs.desktopUrl, `SELECT count(*)::int AS n FROM job`);
    expect(frozen?.n).toBeGreaterThan(1);
    const step = await forwardJob(config);
    expect(step.mode).toBe('incremental');
    expect(step.read).toBe(1);
    expect(step.updated).toBe(1);
    expect((await forwardJob(config)).read).toBe(0);
    expect(await cloudJobs(dbs)).toEqual(await desktopJobs(dbs));
  });

  it('xmin: VACUUM FULL rewrites the table, and the next run reads it in full and says why', async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    await query(dbs.desktopUrl, 'VACUUM FULL job');
    const plan = await planCommand(config, { direction: 'forward', tables: ['job'], mode: 'auto' });
    expect(plan.steps[0]?.mode).toBe('full');
    expect(plan.steps[0]?.reason).toMatch(/table was rewritten since the last read \(relfilenode \d+ → \d+/);
    const [count] = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM job');
    const step = await forwardJob(config);
    expect(step.mode).toBe('full');
    // Compared in full, checksum-first (SPEC §8): each desktop row is read, or found equal by its bucket's checksum.
    expect(step.reason).toMatch(/checksum-first/);
    expect(step.inserted + step.updated + step.unchanged + step.protected + step.rejected).toBe(count?.n);
    expect((await forwardJob(config)).read).toBe(0);
  });

  it('xmin: a snapshot saved by another server, or ahead of this one, is not trusted', async () => {
    const config = await xminConfig(dbs);
    await forwardJob(config);
    const save = async (patch: string): Promise<void> => {
      await query(dbs.cloudUrl, `UPDATE bisync.state SET xmin_cursor = xmin_cursor || ${patch} WHERE table_name = 'job' AND direction = 'forward'`);
    };
    await save(`'{"system": "1"}'::jsonb`);
    const other = await planCommand(config, { direction: 'forward', tables: ['job'], mode: 'auto' });
    expect(other.steps[0]?.mode).toBe('full');
    expect(other.steps[0]?.reason).toMatch(/a different server than the last read/);
    await forwardJob(config);
    await save(`jsonb_build_object('xmin', '9000000000')`);
    const ahead = await planCommand(config, { direction: 'forward', tables: ['job'], mode: 'auto' });
    expect(ahead.steps[0]?.mode).toBe('full');
    expect(ahead.steps[0]?.reason).toMatch(/ahead of the server's/);
  });

  it('bisync adds the xmin_cursor column to a state table created before it existed', async () => {
    const config = await xminConfig(dbs);
    await query(dbs.cloudUrl, 'ALTER TABLE bisync.state DROP COLUMN xmin_cursor');
    const plan = await planCommand(config, { direction: 'forward', tables: ['job'], mode: 'auto' });
    expect(plan.steps[0]?.reason).toMatch(/no read snapshot saved yet/);
    await forwardJob(config);
    const [state] = await query<{ xmin_cursor: unknown }>(dbs.cloudUrl, `SELECT xmin_cursor FROM bisync.state WHERE table_name = 'job' AND direction = 'forward'`);
    expect(state?.xmin_cursor).not.toBeNull();
  });
});
