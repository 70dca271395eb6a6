import { describe, expect, it } from 'vitest';
import { envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import type { CliResult } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, jobsConfigYaml, seedDesktop } from '../executor/jobs-fixture.js';

// A password with characters that need URL encoding, so both spellings are searched for.
const PASSWORD = 'S3cr3t:p@ss/w0rd%!';
const ENCODED = encodeURIComponent(PASSWORD);

function expectNoSecret(result: CliResult): void {
  for (const text of [result.stdout, result.stderr]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(ENCODED);
  }
}

describe('passwords never appear in logs, errors, plans, --json output or runs rows', () => {
  const dbs = useFreshDatabases('secrets');
  const env = (): NodeJS.ProcessEnv => {
    const withPassword = (url: string): string => {
      const u = new URL(url);
      u.username = 'bisync_secret';
      u.password = ENCODED;
      return u.toString();
    };
    return envFor({ desktopUrl: withPassword(dbs.desktopUrl), cloudUrl: withPassword(dbs.cloudUrl) });
  };

  it('through validate, plan, apply (with debug logs and a failing step), status, and their --json forms', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await query(url, `DO $$ BEGIN CREATE ROLE bisync_secret LOGIN SUPERUSER PASSWORD '${PASSWORD.replace(/'/g, "''")}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    }
    const file = jobsConfigFile();
    const results: CliResult[] = [];
    results.push(await runCli(['validate', '--live', '--config', file], env()));
    results.push(await runCli(['validate', '--live', '--json', '--config', file], env()));
    results.push(await runCli(['plan', '--config', file], env()));
    results.push(await runCli(['plan', '--format', 'json', '--config', file], env()));
    results.push(await runCli(['apply', '--config', file, '--log-level', 'trace', '--log-format', 'json'], env()));
    // A step that fails: its error goes to the report, the logs and the runs table.
    await query(dbs.cloudUrl, `ALTER TABLE job ADD CONSTRAINT no_new_jobs CHECK (job_id < 0) NOT VALID`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (100, 1, 'x', 'open')`);
    results.push(await runCli(['apply', '--json', '--config', file, '--log-level', 'trace'], env()));
    results.push(await runCli(['status', '--config', file], env()));
    results.push(await runCli(['status', '--json', '--config', file], env()));

    expect(results.every((r) => r.code === 0 || r.code === 1)).toBe(true);
    expect(results[4]?.stderr).toMatch(/"msg":"client forward: succeeded \(full\): read /);
    for (const result of results) expectNoSecret(result);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      const stored = await query<{ t: string }>(url, `SELECT coalesce(string_agg(r::text, ' '), '') AS t FROM bisync.runs r`);
      expect(stored[0]?.t).not.toContain(PASSWORD);
      const rejects = await query<{ t: string }>(url, `SELECT coalesce(string_agg(r::text, ' '), '') AS t FROM bisync.rejects r`);
      expect(rejects[0]?.t).not.toContain(PASSWORD);
    }
  });

  it('through connection failures: wrong password, unknown database, nothing listening', async () => {
    const file = jobsConfigFile();
    const wrong = new URL(dbs.cloudUrl);
    wrong.username = 'bisync_secret';
    wrong.password = encodeURIComponent(`${PASSWORD}-wrong`);
    const noDb = new URL(env().CLOUD_DATABASE_URL ?? '');
    noDb.pathname = '/no_such_database';
    const nowhere = `postgres://bisync_secret:${ENCODED}@127.0.0.1:9/x`;
    for (const cloud of [wrong.toString(), noDb.toString(), nowhere]) {
      for (const args of [['validate', '--live'], ['apply', '--json'], ['plan']]) {
        const result = await runCli([...args, '--config', file], { ...env(), CLOUD_DATABASE_URL: cloud });
        expect(result.code).toBe(2);
        expectNoSecret(result);
        expect(result.stdout + result.stderr).not.toContain(`${PASSWORD}-wrong`);
      }
    }
  });

  it('through config errors that involve a URL holding a password', async () => {
    const file = writeConfig(jobsConfigYaml().replace('forward: { from: desktop, to: cloud }', 'forward: { from: desktop, to: clod }'));
    const result = await runCli(['validate', '--json', '--config', file], { ...env(), DESKTOP_DATABASE_URL: `mysql://u:${ENCODED}@host/db` });
    expect(result.code).toBe(2);
    expectNoSecret(result);
  });
});
