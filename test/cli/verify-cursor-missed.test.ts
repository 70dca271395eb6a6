import { describe, expect, it } from 'vitest';
import type { VerifyReport } from '../../src/commands/verify.js';
import { apply, envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from '../executor/jobs-fixture.js';

describe('verify reports rows a cursor missed', () => {
  const dbs = useFreshDatabases('cursor_missed');

  it('a cloud row edited without touching updated_at is "drift the cursor missed", named by key, and verify exits 1', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 4);
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await apply(config);
    // Two phone jobs: 9001 last touched an hour ago, 9000 now; reverse reads both and its watermark is 9000's.
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source, created_at, updated_at) VALUES
         (9000, 1, 'new', 'open', 'M', now(), now()),
         (9001, 1, 'older', 'open', 'M', now() - interval '1 hour', now() - interval '1 hour')`,
    );
    expect((await apply(config, { direction: 'reverse' })).exitCode).toBe(0);
    // The phone app edits 9001 and no trigger maintains updated_at: reverse never reads it again.
    await query(dbs.cloudUrl, `UPDATE job SET title = 'edited on the phone' WHERE job_id = 9001`);
    expect((await apply(config, { direction: 'reverse' })).steps.find((s) => s.table === 'job')?.updated).toBe(0);

    const json = await runCli(['verify', '--json', '--table', 'job', '--config', config.file], envFor(dbs));
    const text = await runCli(['verify', '--table', 'job', '--config', config.file], envFor(dbs));

    expect(json.code).toBe(1);
    const job = (JSON.parse(json.stdout) as VerifyReport).tables[0];
    expect(job?.status).toBe('drift');
    expect(job?.findings.find((f) => f.kind === 'cursor-missed' && f.database === 'cloud')).toMatchObject({ count: 1, drift: true, keys: [{ job_id: '9001' }] });
    expect(job?.findings.find((f) => f.kind === 'protected-differs')?.count).toBe(0);
    expect(text.stdout).toContain('drift the cursor missed: differs, and its cursor value on cloud is older than the reverse watermark less lookback');
    expect(text.stdout).toMatch(/bisync apply --direction reverse --table job --mode full sends it; maintain the cursor on update \(e\.g\. a moddatetime trigger\) \(1\): job_id=9001/);
  });
});
