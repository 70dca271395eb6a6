import { describe, expect, it } from 'vitest';
import type { StepStatus } from '../../src/commands/status.js';
import { apply, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, jobsConfigYaml, seedDesktop } from '../executor/jobs-fixture.js';
import { testConfig } from '../harness/bisync.js';

interface StatusJson {
  ok: boolean;
  steps: StepStatus[];
  attention: string[];
}

/** SQL that gives bisync's state schema and its tables to `role`. */
function stateOwner(role: string): string {
  return [`ALTER SCHEMA bisync OWNER TO ${role}`, ...['state', 'runs', 'rejects', 'base', 'conflicts'].map((t) => `ALTER TABLE bisync.${t} OWNER TO ${role}`)].join('; ');
}

/** A cloud URL that logs in as a role that may read the synced tables but not write them. */
async function readOnlyCloudUrl(cloudUrl: string): Promise<string> {
  await query(cloudUrl, `DO $$ BEGIN CREATE ROLE bisync_status_ro LOGIN PASSWORD 'ro-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  await query(cloudUrl, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO bisync_status_ro`);
  // bisync uses a state schema only when the role it connects as owns it (another role's could hold triggers).
  await query(cloudUrl, stateOwner('bisync_status_ro'));
  const url = new URL(cloudUrl);
  url.username = 'bisync_status_ro';
  url.password = 'ro-pw';
  return url.toString();
}

describe('status tells the owner what needs them', () => {
  const dbs = useFreshDatabases('statusattn');

  it('status shows a failed step with its error, naming the database and the missing grant, and exits 1', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 4);
    const file = jobsConfigFile();
    await apply(await testConfig(file, dbs), { direction: 'forward' });
    const cloudRo = await readOnlyCloudUrl(dbs.cloudUrl);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (3, 'new')`);

    const failed = await runCli(['apply', '--direction', 'forward', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo });
    expect(failed.code).toBe(1);

    const result = await runCli(['status', '--json', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as StatusJson;
    expect(report.ok).toBe(false);
    const client = report.steps.find((s) => s.table === 'client' && s.direction === 'forward');
    expect(client?.lastRun?.status).toBe('failed');
    expect(client?.lastRun?.error).toMatch(/^on cloud: permission denied for table client \(role "bisync_status_ro"; writing needs GRANT SELECT, INSERT, UPDATE ON public\.client TO "bisync_status_ro"\)$/);
    expect(report.attention).toContain(`client forward: last run failed at ${client?.lastRun?.finishedAt}: ${client?.lastRun?.error}`);

    const text = await runCli(['status', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/Needs you:\n {2}client forward: last run failed at .*: on cloud: permission denied for table client/);
  });

  it('status shows a step whose only run failed (no watermark yet) instead of "never"', async () => {
    await query(dbs.cloudUrl, `REVOKE SELECT ON job FROM bisync_status_ro`);
    const file = writeConfig(jobsConfigYaml().replace('direction: both\n    after: [client]', 'direction: reverse\n    after: [client]'));
    const cloudRo = new URL(dbs.cloudUrl);
    cloudRo.username = 'bisync_status_ro';
    cloudRo.password = 'ro-pw';
    const failed = await runCli(['apply', '--direction', 'reverse', '--table', 'job', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo.toString() });
    expect(failed.code).toBe(1);

    // status runs as the role that owns the state too, and counts waiting rows on job: let it read job for that.
    await query(dbs.cloudUrl, `GRANT SELECT ON job TO bisync_status_ro`);
    const result = await runCli(['status', '--json', '--table', 'job', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo.toString() });
    await query(dbs.cloudUrl, `REVOKE SELECT ON job FROM bisync_status_ro`);
    expect(result.code).toBe(1);
    const job = (JSON.parse(result.stdout) as StatusJson).steps.find((s) => s.direction === 'reverse');
    expect(job?.watermark).toBeNull();
    expect(job?.lastRun).toMatchObject({ status: 'failed', read: 0 });
    expect(job?.lastRun?.error).toMatch(/^on cloud: permission denied for table job \(role "bisync_status_ro"; reading needs GRANT SELECT ON public\.job TO "bisync_status_ro"\)$/);
  });

  it('validate --live names the grants each step needs that the role lacks', async () => {
    const file = jobsConfigFile();
    const cloudRo = new URL(dbs.cloudUrl);
    cloudRo.username = 'bisync_status_ro';
    cloudRo.password = 'ro-pw';
    const result = await runCli(['validate', '--live', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: cloudRo.toString() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('table "client" on cloud (public.client): the forward step needs INSERT, UPDATE on this table, which the role bisync connects as does not have');
    expect(result.stderr).toContain('hint: GRANT INSERT, UPDATE ON public.client TO <the role in the cloud URL>');
    expect(result.stderr).toContain('table "job" on cloud (public.job): the reverse step needs SELECT on this table');
  });

  it('status exits 0 and says nothing needs you when every last run succeeded and nothing is pending', async () => {
    const file = jobsConfigFile();
    await query(dbs.cloudUrl, stateOwner('CURRENT_USER'));
    await apply(await testConfig(file, dbs));
    const result = await runCli(['status', '--config', file], envFor(dbs));
    expect(result.stdout).toContain("Nothing needs you: every step's last run succeeded and no rows are pending.");
    expect(result.code).toBe(0);
  });
});
