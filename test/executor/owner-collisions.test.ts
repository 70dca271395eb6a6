/**
 * SPEC §7, edits: owner: reverse `write: upsert` never overwrites a row on the desktop that bisync
 * did not write there and that differs — an `insert-insert` conflict, parked, instead (issue 10,
 * item 6). Rows bisync wrote are still updated; an upgrade from a state that did not record which
 * rows bisync wrote takes the rows both sides hold as bisync's once, instead of a flood of conflicts.
 */
import { describe, expect, it } from 'vitest';
import { apply, configHead, envFor, query, runCli, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, jobsConfigFile } from './jobs-fixture.js';

type Job = { job_id: number; title: string; status: string | null };

const job = async (url: string, id: number): Promise<Job | undefined> =>
  (await query<Job>(url, 'SELECT job_id, title, status FROM job WHERE job_id = $1', [id]))[0];

const conflicts = async (url: string): Promise<{ table_name: string; key: unknown; kind: string; versions: Record<string, unknown> }[]> =>
  await query(url, 'SELECT table_name, key, kind, versions FROM bisync.conflicts ORDER BY table_name, key');

describe('edits: owner collision safety (SPEC §7)', () => {
  const dbs = useFreshDatabases('collide');

  it("both sides create key 5000: reverse upsert parks an insert-insert conflict and never replaces the office's job", async () => {
    await createJobsSchema(dbs);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (1, 'acme')`);
    const config = await jobsConfig(dbs);
    await apply(config);
    // Between two runs, the office and the phone both create job 5000.
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (5000, 1, 'office audit', 'Open')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5000, 1, 'phone visit', 'Active', 'M')`);

    const report = await apply(config);

    expect(report.exitCode).toBe(0);
    const reverse = report.steps.find((s) => s.table === 'job' && s.direction === 'reverse');
    expect(reverse).toMatchObject({ status: 'succeeded', updated: 0, conflicts: 1, parked: 1, rejected: 0 });
    expect(await job(dbs.desktopUrl, 5000)).toEqual({ job_id: 5000, title: 'office audit', status: 'Open' });
    expect(await job(dbs.cloudUrl, 5000)).toEqual({ job_id: 5000, title: 'phone visit', status: 'Active' });
    const parked = await conflicts(dbs.desktopUrl);
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatchObject({ table_name: 'job', key: ['5000'], kind: 'insert-insert' });
    expect(parked[0]?.versions).toMatchObject({ cloud: { title: 'phone visit' }, desktop: { title: 'office audit' } });

    // Parked: later runs leave it alone, even when the phone edits its job again.
    await query(dbs.cloudUrl, `UPDATE job SET status = 'Done', updated_at = now() WHERE job_id = 5000`);
    const again = await apply(config, { mode: 'full' });
    expect(again.exitCode).toBe(0);
    expect(await job(dbs.desktopUrl, 5000)).toEqual({ job_id: 5000, title: 'office audit', status: 'Open' });
    expect(await conflicts(dbs.desktopUrl)).toHaveLength(1);
  });

  it('a parked collision clears itself when both sides hold the same row, and the row is then updated normally', async () => {
    await query(dbs.desktopUrl, `UPDATE job SET title = 'phone visit', status = 'Done' WHERE job_id = 5000`);
    const cleared = await apply(await jobsConfig(dbs), { direction: 'reverse', mode: 'full' });
    expect(cleared.steps.find((s) => s.table === 'job')).toMatchObject({ conflicts: 0, updated: 0 });
    expect(await conflicts(dbs.desktopUrl)).toEqual([]);

    await query(dbs.cloudUrl, `UPDATE job SET status = 'Invoiced', updated_at = now() WHERE job_id = 5000`);
    const later = await apply(await jobsConfig(dbs), { direction: 'reverse' });
    expect(later.steps.find((s) => s.table === 'job')).toMatchObject({ updated: 1, conflicts: 0 });
    expect(await job(dbs.desktopUrl, 5000)).toEqual({ job_id: 5000, title: 'phone visit', status: 'Invoiced' });
  });

  it('a row reverse wrote earlier is still updated by reverse upsert, and equal rows are no conflict', async () => {
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (6000, 1, 'phone job', 'Active', 'M')`);
    const config = await jobsConfig(dbs);
    const first = await apply(config, { direction: 'reverse' });
    expect(first.steps.find((s) => s.table === 'job')).toMatchObject({ inserted: 1, conflicts: 0 });
    // The office edits the phone's row on the desktop (owner mode: the phone's row is the cloud's),
    // and the phone edits it too: the phone's version wins, as before.
    await query(dbs.desktopUrl, `UPDATE job SET status = 'office note' WHERE job_id = 6000`);
    await query(dbs.cloudUrl, `UPDATE job SET status = 'Completed', updated_at = now() WHERE job_id = 6000`);

    const report = await apply(config, { direction: 'reverse' });

    expect(report.steps.find((s) => s.table === 'job')).toMatchObject({ updated: 1, conflicts: 0 });
    expect(await job(dbs.desktopUrl, 6000)).toEqual({ job_id: 6000, title: 'phone job', status: 'Completed' });
  });

  it('bisync resolve --keep cloud settles a collision: the phone row is written to the desktop and later updates travel', async () => {
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (7000, 1, 'office 7000', 'Open')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (7000, 1, 'phone 7000', 'Active', 'M')`);
    const config = await jobsConfig(dbs);
    expect((await apply(config, { direction: 'reverse' })).steps.find((s) => s.table === 'job')?.parked).toBe(1);
    const { resolveConflicts } = await import('../../src/commands/conflicts.js');
    await resolveConflicts(config, 'job', '7000', 'cloud');
    expect(await job(dbs.desktopUrl, 7000)).toEqual({ job_id: 7000, title: 'phone 7000', status: 'Active' });
    await query(dbs.cloudUrl, `UPDATE job SET status = 'Closed', updated_at = now() WHERE job_id = 7000`);
    const report = await apply(config, { direction: 'reverse' });
    expect(report.steps.find((s) => s.table === 'job')).toMatchObject({ updated: 1, conflicts: 0 });
    expect(await job(dbs.desktopUrl, 7000)).toEqual({ job_id: 7000, title: 'phone 7000', status: 'Closed' });
  });
});

describe('edits: owner collision safety with a composite key', () => {
  it('a collision on a two-column key is parked under both key values; a different second key value is inserted', async () => {
    const own = await createDatabases('collide2');
    try {
      const ddl = (extra: string): string => `CREATE TABLE visit (site integer, visit_no integer, note text NOT NULL${extra}, PRIMARY KEY (site, visit_no))`;
      await withClient(own.desktopUrl, async (c) => await c.query(ddl('')));
      await withClient(own.cloudUrl, async (c) => await c.query(ddl(', source char(1), updated_at timestamptz NOT NULL DEFAULT now()')));
      const file = writeConfig(`
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
  - name: visit
    primary_key: [site, visit_no]
    direction: both
    timestamps: { cloud: [updated_at] }
`);
      const config = await testConfig(file, own);
      await query(own.desktopUrl, `INSERT INTO visit VALUES (1, 1, 'office 1/1')`);
      await query(own.cloudUrl, `INSERT INTO visit (site, visit_no, note, source) VALUES (1, 1, 'phone 1/1', 'M'), (1, 2, 'phone 1/2', 'M')`);

      const report = await apply(config, { direction: 'reverse' });

      expect(report.steps[0]).toMatchObject({ inserted: 1, updated: 0, parked: 1 });
      expect(await query(own.desktopUrl, 'SELECT site, visit_no, note FROM visit ORDER BY 1, 2')).toEqual([
        { site: 1, visit_no: 1, note: 'office 1/1' },
        { site: 1, visit_no: 2, note: 'phone 1/2' },
      ]);
      expect(await query(own.desktopUrl, 'SELECT key, kind FROM bisync.conflicts')).toEqual([{ key: ['1', '1'], kind: 'insert-insert' }]);
    } finally {
      await own.drop();
    }
  });
});

describe('edits: owner collision safety after an upgrade', () => {
  it('a state from a bisync that kept no base: the first run reads in full and adopts what both sides hold (no flood of conflicts); later collisions park', async () => {
    const up = await createDatabases('collide_up');
    try {
      await createJobsSchema(up);
      await query(up.desktopUrl, `INSERT INTO client (client_id, name) VALUES (1, 'acme')`);
      const config = await jobsConfig(up);
      await apply(config);
      await query(up.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) SELECT i, 1, 'phone ' || i, 'Active', 'M' FROM generate_series(1, 20) i`);
      await apply(config);
      // What an earlier bisync left: no base_tracked column, nothing in base.
      await query(up.desktopUrl, 'ALTER TABLE bisync.state DROP COLUMN base_tracked; DELETE FROM bisync.base');
      // Since then the phone edited ten of its rows (reverse has not run yet).
      await query(up.cloudUrl, `UPDATE job SET status = 'Completed', updated_at = now() WHERE job_id <= 10`);

      const upgraded = await apply(config, { direction: 'reverse' });

      const step = upgraded.steps.find((s) => s.table === 'job');
      expect(step).toMatchObject({ mode: 'full', updated: 10, unchanged: 10, conflicts: 0 });
      expect(step?.reason).toMatch(/collision safety: .*every row is read once/);
      expect(await query(up.desktopUrl, `SELECT count(*)::int AS n FROM job WHERE status = 'Completed'`)).toEqual([{ n: 10 }]);
      expect(await query(up.desktopUrl, `SELECT count(*)::int AS n FROM bisync.base WHERE table_name = 'job'`)).toEqual([{ n: 20 }]);

      // Tracked from now on: incremental again, a phone edit of an old row updates, a collision parks.
      await query(up.cloudUrl, `UPDATE job SET status = 'Invoiced', updated_at = now() WHERE job_id = 15`);
      await query(up.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (5000, 1, 'office 5000', 'Open')`);
      await query(up.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5000, 1, 'phone 5000', 'Active', 'M')`);
      const later = await apply(config, { direction: 'reverse' });
      expect(later.steps.find((s) => s.table === 'job')).toMatchObject({ mode: 'incremental', updated: 1, parked: 1 });
      expect(await job(up.desktopUrl, 5000)).toEqual({ job_id: 5000, title: 'office 5000', status: 'Open' });
    } finally {
      await up.drop();
    }
  });
});

describe('edits: owner collisions are reported by apply, status and conflicts (CLI)', () => {
  it('apply names the parked collision and exits 0; status and conflicts list it and exit 1', async () => {
    const cliDbs = await createDatabases('collide_cli');
    try {
      await createJobsSchema(cliDbs);
      await query(cliDbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (1, 'acme')`);
      const file = jobsConfigFile();
      const cli = async (...args: string[]) => await runCli([...args, '--config', file], envFor(cliDbs));
      expect((await cli('apply')).code).toBe(0);
      await query(cliDbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (5000, 1, 'office audit', 'Open')`);
      await query(cliDbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5000, 1, 'phone visit', 'Active', 'M')`);

      const applied = await cli('apply');
      expect(applied.code).toBe(0);
      expect(applied.stdout).toMatch(/job reverse: 1 conflict \(the same key made on both sides: parked, a row bisync did not write is never overwritten; see bisync conflicts --table job\)/);

      const status = await cli('status');
      expect(status.code).toBe(1);
      expect(status.stdout + status.stderr).toMatch(/job reverse: 1 conflict pending \(bisync conflicts --table job\)/);

      const listed = await cli('conflicts', '--json');
      expect(listed.code).toBe(1);
      const doc = JSON.parse(listed.stdout) as { conflicts: { table: string; key: Record<string, string>; kind: string; desktop: unknown; cloud: unknown }[] };
      expect(doc.conflicts).toHaveLength(1);
      expect(doc.conflicts[0]).toMatchObject({ table: 'job', key: { job_id: '5000' }, kind: 'insert-insert', desktop: { title: 'office audit' }, cloud: { title: 'phone visit' } });
    } finally {
      await cliDbs.drop();
    }
  });
});

describe('edits: owner adoption and rows it could not write', () => {
  it('a row the adopting run could not write is adopted when it is written later, not parked as a collision', async () => {
    const up = await createDatabases('collide_adopt');
    try {
      await createJobsSchema(up);
      await query(up.desktopUrl, `INSERT INTO client (client_id, name) VALUES (1, 'acme')`);
      await query(up.desktopUrl, `ALTER TABLE job ADD CONSTRAINT no_broken CHECK (status IS DISTINCT FROM 'Broken')`);
      const config = await jobsConfig(up);
      await apply(config);
      await query(up.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) SELECT i, 1, 'phone ' || i, 'Active', 'M' FROM generate_series(1, 5) i`);
      await apply(config);
      // What an earlier bisync left; since then the phone set a status the desktop refuses on job 3.
      await query(up.desktopUrl, 'ALTER TABLE bisync.state DROP COLUMN base_tracked; DELETE FROM bisync.base');
      await query(up.cloudUrl, `UPDATE job SET status = 'Broken', updated_at = now() WHERE job_id = 3`);
      const adopting = await apply(config, { direction: 'reverse' });
      expect(adopting.steps.find((s) => s.table === 'job')).toMatchObject({ mode: 'full', rejected: 1, parked: 0 });

      // The phone fixes the row: bisync wrote job 3 there before, so the fix is written, not parked.
      await query(up.cloudUrl, `UPDATE job SET status = 'Fixed', updated_at = now() WHERE job_id = 3`);
      const later = await apply(config, { direction: 'reverse' });
      expect(later.steps.find((s) => s.table === 'job')).toMatchObject({ updated: 1, parked: 0, rejected: 0 });
      expect(await job(up.desktopUrl, 3)).toEqual({ job_id: 3, title: 'phone 3', status: 'Fixed' });
      expect(await conflicts(up.desktopUrl)).toEqual([]);
    } finally {
      await up.drop();
    }
  });
});
