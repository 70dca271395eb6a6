import { describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, envFor, loadSample, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

describe('bisync validate', () => {
  const dbs = useFreshDatabases('validate');

  it('prints an OK summary of the example config: tables, directions and execution order', async () => {
    const result = await runCli(['validate', '--config', EXAMPLE_CONFIG], envFor(dbs));
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sync\.config\.yaml: OK — 15 tables, forward desktop → cloud, reverse cloud → desktop/);
    expect(result.stdout).toMatch(/^1\s+orgmaster\s+forward/m);
    expect(result.stdout).toMatch(/reminder\s+both\s+.*mbreminder\s+reminder/);
  });

  it('--config may come after or before the command, and BISYNC_CONFIG is honoured', async () => {
    const before = await runCli(['--config', EXAMPLE_CONFIG, 'validate'], envFor(dbs));
    const fromEnv = await runCli(['validate'], { ...envFor(dbs), BISYNC_CONFIG: EXAMPLE_CONFIG });
    expect(before.code).toBe(0);
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toBe(before.stdout);
  });

  it('validate without --live checks the file alone: unset URL variables are named, not an error', async () => {
    const env = { ...envFor(dbs), CLOUD_DATABASE_URL: '' };
    delete env.DESKTOP_DATABASE_URL;
    const result = await runCli(['validate', '--config', EXAMPLE_CONFIG], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sync\.config\.yaml: OK — 15 tables/);
    expect(result.stderr).toBe('note: DESKTOP_DATABASE_URL, CLOUD_DATABASE_URL are not set here: the file was checked alone; validate --live needs them\n');
  });

  it('a bad config exits 2 with file:line:column, the dotted path and a hint', async () => {
    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], { ...envFor(dbs), CLOUD_DATABASE_URL: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/sync\.config\.yaml:\d+:\d+: databases\.cloud\.url: environment variable CLOUD_DATABASE_URL is empty/);
    expect(result.stderr).toMatch(/hint: set CLOUD_DATABASE_URL/);
  });

  it('--json prints one JSON document', async () => {
    const result = await runCli(['validate', '--json', '--config', EXAMPLE_CONFIG], envFor(dbs));
    const doc = JSON.parse(result.stdout) as { ok: boolean; tables: { name: string; order: number }[] };
    expect(doc.ok).toBe(true);
    expect(doc.tables).toHaveLength(15);
    expect(doc.tables[0]).toMatchObject({ name: 'orgmaster', order: 1 });
  });

  it('--live passes on databases that match the example config', async () => {
    await loadSample(dbs, 0.01);
    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], envFor(dbs));
    // The sample's origin column allows NULL (as in production): warnings, not problems.
    expect(result.stderr).not.toMatch(/problems? against the live databases/);
    expect(result.stderr.split('\n').filter((l) => l.includes(': table "') && !l.includes('origin column "source" allows NULL') && !l.includes('no trigger sets cursor column'))).toEqual([]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/every table, column, key, cursor and origin column matches the config/);
  });

  it('--live reports a missing column, a missing primary key and a wrong cursor column, all at once, exit 2', async () => {
    await query(dbs.cloudUrl, 'ALTER TABLE remdetail DROP CONSTRAINT remdetail_pkey');
    await query(dbs.cloudUrl, 'ALTER TABLE workdiary RENAME COLUMN updated_at TO changed_at');
    // climaster syncs both ways: a NOT NULL desktop column the cloud lacks would make reverse inserts fail.
    await query(dbs.cloudUrl, 'ALTER TABLE climaster DROP COLUMN client_name');

    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], envFor(dbs));

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/sync\.config\.yaml:\d+:\d+: table "remdetail" on cloud \(public\.remdetail\): no primary key or unique constraint on \(remd_id\)/);
    expect(result.stderr).toMatch(/table "workdiary" on cloud \(public\.workdiary\): cursor column "updated_at" does not exist/);
    expect(result.stderr).toMatch(/table "climaster" on desktop \(public\.climaster\): column "client_name" is NOT NULL without a default, but is not synced/);
    expect(result.stderr).toMatch(/^3 problems against the live databases/m);
  });

  it('--live with a wrong password exits 2 naming host and database, never the password', async () => {
    const url = new URL(dbs.cloudUrl);
    url.password = 'Wr0ng-S3cret-Pa55';
    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], { ...envFor(dbs), CLOUD_DATABASE_URL: url.toString() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`cannot connect to cloud \\(127\\.0\\.0\\.1:${url.port}/${url.pathname.slice(1)}\\): password authentication failed`));
    expect(result.stderr + result.stdout).not.toContain('Wr0ng-S3cret-Pa55');
  });

  it('--live with nothing listening exits 2 with a hint', async () => {
    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG], {
      ...envFor(dbs),
      DESKTOP_DATABASE_URL: 'postgres://bisync:hunter2hunter2@127.0.0.1:9/nowhere',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot connect to desktop \(127\.0\.0\.1:9\/nowhere\)/);
    expect(result.stderr).toMatch(/hint: nothing listens there/);
    expect(result.stderr).not.toContain('hunter2hunter2');
  });
});
