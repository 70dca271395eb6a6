import { describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

describe('a password equal to the user name', () => {
  const dbs = useFreshDatabases('pwuser');

  it('a failed login names the user, not "***", when the password given equals the user name', async () => {
    await query(dbs.cloudUrl, `DO $$ BEGIN CREATE ROLE bisync_same LOGIN PASSWORD 'not-the-name'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    const url = new URL(dbs.cloudUrl);
    url.username = 'bisync_same';
    url.password = 'bisync_same';

    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], { ...envFor(dbs), CLOUD_DATABASE_URL: url.toString() });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('password authentication failed for user "bisync_same"');
    expect(result.stderr).not.toContain('user "***"');
  });
});
