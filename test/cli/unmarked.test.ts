import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StepStatus } from '../../src/commands/status.js';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

interface LogLine {
  level: number;
  msg: string;
}

describe('unmarked rows (origin column NULL) are never deleted, and the owner is told', () => {
  const dbs = useFreshDatabases('unmarked');
  let file = '';

  it('a cloud row without a marker survives deletes: mirror, and apply warns that it is unmarked', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 4);
    file = jobsConfigFile({ jobExtra: '    deletes: mirror' });
    expect((await runCli(['apply', '--config', file], envFor(dbs))).code).toBe(0);
    // The phone app forgot its marker on a new job, and an unmarked copy of a desktop job appeared.
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (900, 1, 'from the phone', 'open', NULL)`);
    await query(dbs.cloudUrl, `UPDATE job SET source = NULL, title = 'edited unmarked' WHERE job_id = 2`);

    const run = await runCli(['apply', '--direction', 'forward', '--json', '--log-format', 'json', '--log-level', 'warn', '--config', file], envFor(dbs));

    expect(run.code).toBe(0);
    const job = (JSON.parse(run.stdout) as { steps: { table: string; deleted: number; updated: number; unmarked: number }[] }).steps.find((s) => s.table === 'job');
    expect(job).toMatchObject({ deleted: 0, updated: 1, unmarked: 1 });
    expect(await query(dbs.cloudUrl, `SELECT job_id, title, source FROM job WHERE job_id IN (2, 900) ORDER BY job_id`)).toEqual([
      { job_id: 2, title: 'job 2', source: 'D' },
      { job_id: 900, title: 'from the phone', source: null },
    ]);
    const warnings = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine)
      .filter((l) => l.level === 40);
    expect(warnings.map((w) => w.msg)).toContain(
      'job forward: 1 unmarked row on cloud (origin column NULL) that desktop does not have: never deleted, never sent; set their marker (bisync verify --table job names them)',
    );
  });

  it('status lists the unmarked rows under what needs you and exits 1', async () => {
    const result = await runCli(['status', '--json', '--config', file], envFor(dbs));
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { steps: StepStatus[]; attention: string[] };
    expect(report.steps.find((s) => s.table === 'job' && s.direction === 'forward')?.unmarked).toBe(1);
    expect(report.attention).toContain(
      'job forward: 1 unmarked row on cloud (origin column NULL): forward stamps those desktop holds; the others are never deleted and never sent until someone sets their marker (bisync verify --table job names them)',
    );
  });

  it('verify names the unmarked row as drift', async () => {
    const result = await runCli(['verify', '--json', '--table', 'job', '--config', file], envFor(dbs));
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { tables: { findings: { kind: string; count: number; keys: unknown[]; drift: boolean }[] }[] };
    expect(report.tables[0]?.findings.find((f) => f.kind === 'unmarked')).toMatchObject({ count: 1, drift: true, keys: [{ job_id: '900' }] });
  });

  it('validate --live warns that the origin column allows NULL and has no default, without failing, one line for every table with the same gap', async () => {
    const result = await runCli(['validate', '--live', '--config', file], envFor(dbs));
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/\d+ warnings against the live databases/);
    // Both tables have the same gap: one line names them, the hint shows the first as an example.
    const lines = result.stderr.split('\n').filter((l) => l.includes('origin column "source" allows NULL'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /: 2 tables on cloud: "client" \(public\.client, line \d+\), "job" \(public\.job, line \d+\): origin column "source" allows NULL and has no default: a row inserted without a marker is unmarked; forward never deletes it and reverse never sends it/,
    );
    expect(result.stderr).toContain('hint, e.g. for "client": have the application on cloud always set source');
  });

  it('init warns that the origin column it chose lets rows be inserted unmarked', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'bisync-unmarked-')), 'sync.config.yaml');
    const result = await runCli(['init', '--desktop', dbs.desktopUrl, '--cloud', dbs.cloudUrl, '--out', out], envFor(dbs));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('warning: on cloud, the origin column of client.source, job.source allows NULL or has no default:');
    expect(result.stdout).toContain('bisync never deletes it and reverse never sends it');
  });
});
