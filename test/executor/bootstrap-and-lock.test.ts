import { describe, expect, it } from 'vitest';
import { apply, envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, jobsConfigFile, seedDesktop } from './jobs-fixture.js';

const schemaTables = async (url: string, schema: string): Promise<string[]> =>
  (await query<{ t: string }>(url, `SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY 1`, [schema])).map((r) => r.t);

describe('seed 004: bisync creates its own state on first use, idempotently and race-free', () => {
  const dbs = useFreshDatabases('boot004');

  it('the first run on fresh databases creates state, runs and rejects in their own schema, never in public', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 3);
    expect(await schemaTables(dbs.cloudUrl, 'bisync')).toEqual([]);

    const report = await apply(await jobsConfig(dbs));

    expect(report.exitCode).toBe(0);
    for (const url of [dbs.cloudUrl, dbs.desktopUrl]) {
      expect(await schemaTables(url, 'bisync')).toEqual(['base', 'conflicts', 'rejects', 'runs', 'state']);
      expect(await schemaTables(url, 'public')).toEqual(['client', 'job']);
    }
    const runs = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM bisync.runs WHERE status = 'succeeded'`);
    expect(runs[0]?.n).toBe(2);
  });

  it('two runs that bootstrap at the same moment both succeed and create the state once', async () => {
    await query(dbs.cloudUrl, 'DROP SCHEMA bisync CASCADE');
    await query(dbs.desktopUrl, 'DROP SCHEMA bisync CASCADE');
    const config = await jobsConfig(dbs);

    const [a, b] = await Promise.all([apply(config, { tables: ['client'] }), apply(config, { tables: ['job'] })]);

    expect(a.exitCode).toBe(0);
    expect(b.exitCode).toBe(0);
    expect(await schemaTables(dbs.cloudUrl, 'bisync')).toEqual(['base', 'conflicts', 'rejects', 'runs', 'state']);
  });

  it('a second run of the same step while the first holds it exits 3 and changes nothing; nothing is duplicated', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (300, 1, 'new', 'open')`);
    const file = jobsConfigFile();
    let second: Awaited<ReturnType<typeof runCli>> | undefined;
    const first = await apply(config, {
      direction: 'forward',
      tables: ['job'],
      // The first run is between its read and its commit, holding the step's lock.
      afterRead: async () => {
        second = await runCli(['apply', '--config', file, '--direction', 'forward', '--table', 'job', '--log-level', 'error'], envFor(dbs));
      },
    });

    expect(second?.code).toBe(3);
    expect(second?.stdout).toContain('locked');
    expect(first.exitCode).toBe(0);
    expect(first.steps[0]?.inserted).toBe(1);
    const rows = await query<{ n: number }>(dbs.cloudUrl, 'SELECT count(*)::int AS n FROM job WHERE job_id = 300');
    expect(rows[0]?.n).toBe(1);
    const lockedRuns = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM bisync.runs WHERE status <> 'succeeded'`);
    expect(lockedRuns[0]?.n).toBe(0);
  });

  it('different tables sync at the same time: the lock is per (table, direction)', async () => {
    const config = await jobsConfig(dbs);
    let other: Awaited<ReturnType<typeof apply>> | undefined;
    const first = await apply(config, {
      direction: 'forward',
      tables: ['job'],
      afterRead: async () => {
        other = await apply(config, { direction: 'forward', tables: ['client'] });
      },
    });
    expect(first.exitCode).toBe(0);
    expect(other?.exitCode).toBe(0);
    expect(other?.steps[0]?.status).toBe('succeeded');
  });
});
