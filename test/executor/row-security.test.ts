import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apply, query, runCli, testConfig } from '../harness/bisync.js';
import { createDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from './jobs-fixture.js';

/** The URL of `url`'s database for another role. */
function asRole(url: string, role: string): string {
  const parsed = new URL(url);
  parsed.username = role;
  parsed.password = 'pw';
  return parsed.toString();
}

/** The jobs slice, synced once as the admin, and a least-privilege role bisync then connects as. */
async function rlsSlice(): Promise<{ dbs: TestDatabases & { drop(): Promise<void> }; role: string; roleDbs: TestDatabases; cleanup(): Promise<void> }> {
  const dbs = await createDatabases('rls');
  const role = `bisync_rls_${randomBytes(3).toString('hex')}`;
  await createJobsSchema(dbs);
  await seedDesktop(dbs, 2, 10);
  await query(dbs.cloudUrl, `CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
  for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
    const db = new URL(url).pathname.slice(1);
    await query(url, `GRANT CREATE ON DATABASE "${db}" TO ${role}; GRANT SELECT, INSERT, UPDATE ON client, job TO ${role}`);
  }
  const roleDbs = { desktopUrl: asRole(dbs.desktopUrl, role), cloudUrl: asRole(dbs.cloudUrl, role) };
  await apply(await testConfig(jobsConfigFile(), roleDbs));
  await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9001, 1, 'phone job', 'open', 'M')`);
  // Supabase-style: RLS on, a policy for the app's role only.
  await query(dbs.cloudUrl, `CREATE ROLE app_${role}; ALTER TABLE job ENABLE ROW LEVEL SECURITY; CREATE POLICY app_only ON job TO app_${role} USING (true)`);
  return {
    dbs,
    role,
    roleDbs,
    async cleanup() {
      await dbs.drop();
      await query(inAdmin(dbs.cloudUrl), `DROP ROLE IF EXISTS ${role}; DROP ROLE IF EXISTS app_${role}`);
    },
  };
}

function inAdmin(url: string): string {
  const parsed = new URL(url);
  parsed.pathname = '/postgres';
  return parsed.toString();
}

describe('row-level security that hides rows from bisync\'s role is reported, never a silent empty sync', () => {
  it('RLS with no policy for bisync\'s role: validate --live and plan refuse, naming the grant; reverse never "succeeds" reading 0 rows', async () => {
    const { dbs, role, roleDbs, cleanup } = await rlsSlice();
    try {
      const env = { ...process.env, DESKTOP_DATABASE_URL: roleDbs.desktopUrl, CLOUD_DATABASE_URL: roleDbs.cloudUrl };
      const file = jobsConfigFile();

      const validate = await runCli(['validate', '--live', '--config', file], env);
      expect(validate.code).toBe(2);
      expect(validate.stderr).toMatch(new RegExp(`row-level security is enabled and no policy lets role ${role} read it: reverse would silently read 0 rows`));
      expect(validate.stderr).toMatch(/BYPASSRLS/);

      const plan = await runCli(['plan', '--config', file, '--direction', 'reverse', '--table', 'job'], env);
      expect(plan.code).toBe(2);
      expect(plan.stderr).toMatch(/row-level security/);

      const report = await runCli(['apply', '--config', file, '--direction', 'reverse', '--table', 'job', '--log-level', 'error'], env);
      expect(report.code).toBe(2);
      expect(await query(dbs.desktopUrl, 'SELECT job_id FROM job WHERE job_id = 9001')).toEqual([]);

      // The documented grant makes the phone's row travel.
      await query(dbs.cloudUrl, `ALTER ROLE ${role} BYPASSRLS`);
      const granted = await apply(await testConfig(file, roleDbs), { direction: 'reverse', tables: ['job'] });
      expect(granted.steps[0]).toMatchObject({ status: 'succeeded', inserted: 1 });
    } finally {
      await cleanup();
    }
  });

  it('RLS with a policy for bisync\'s role is a warning in validate --live and plan, and a row the policy refuses (42501) is rejected, not the table', async () => {
    const { dbs, role, roleDbs, cleanup } = await rlsSlice();
    try {
      await query(dbs.cloudUrl, `CREATE POLICY bisync_rows ON job TO ${role} USING (true) WITH CHECK (title <> 'classified')`);
      const env = { ...process.env, DESKTOP_DATABASE_URL: roleDbs.desktopUrl, CLOUD_DATABASE_URL: roleDbs.cloudUrl };
      const file = jobsConfigFile();

      const validate = await runCli(['validate', '--live', '--config', file], env);
      expect(validate.code).toBe(0);
      expect(validate.stderr).toMatch(new RegExp(`row-level security is enabled for role ${role}: reverse reads only the rows its policies show`));
      const plan = await runCli(['plan', '--config', file, '--direction', 'forward', '--table', 'job'], env);
      expect(plan.code).toBe(0);
      expect(plan.stdout).toMatch(/-- warning: cloud public\.job: row-level security is enabled/);

      await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (300, 1, 'classified', 'open'), (301, 1, 'public', 'open')`);
      const report = await apply(await testConfig(file, roleDbs), { direction: 'forward', tables: ['job'] });
      expect(report.exitCode).toBe(0);
      expect(report.steps[0]).toMatchObject({ status: 'succeeded', inserted: 1, rejected: 1 });
      expect(await query(dbs.cloudUrl, `SELECT key, error_code FROM bisync.rejects`)).toEqual([{ key: { job_id: '300' }, error_code: '42501' }]);
    } finally {
      await cleanup();
    }
  });
});
