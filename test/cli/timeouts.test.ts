import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ApplyReport } from '../../src/commands/apply.js';
import { envFor, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigYaml, seedDesktop } from '../executor/jobs-fixture.js';

describe('lock and statement timeouts', () => {
  const dbs = useFreshDatabases('timeouts');

  it('a step behind a table lock fails after lock_timeout, naming the database, instead of waiting forever; the other steps run', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    const file = writeConfig(jobsConfigYaml().replace('  lookback: 5s\n', '  lookback: 5s\n  lock_timeout: 300ms\n'));
    const holder = new pg.Client({ connectionString: dbs.cloudUrl });
    await holder.connect();
    await holder.query('BEGIN');
    // Readers may pass (the catalog read, the guard count); bisync's writes wait for the lock.
    await holder.query('LOCK TABLE job IN EXCLUSIVE MODE');
    try {
      const result = await runCli(['apply', '--direction', 'forward', '--json', '--config', file], envFor(dbs));

      expect(result.code).toBe(1);
      const report = JSON.parse(result.stdout) as ApplyReport;
      expect(report.steps.map((s) => `${s.table} ${s.status}`)).toEqual(['client succeeded', 'job failed']);
      expect(report.steps[1]?.error).toBe('on cloud: canceling statement due to lock timeout');
      expect(report.steps[1]?.errorCode).toBe('55P03');
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('plan shows the timeouts as transaction-local settings, with the defaults when the config sets none', async () => {
    const plan = await runCli(['plan', '--direction', 'forward', '--table', 'job', '--config', writeConfig(jobsConfigYaml())], envFor(dbs));
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/set_config\('lock_timeout', \$\d+, true\)/);
    expect(plan.stdout).toContain("'30000ms'  (lock_timeout)");
    expect(plan.stdout).toContain("'3600000ms'  (statement_timeout)");
  });
});
