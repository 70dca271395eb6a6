import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

const runsSoFar = async (url: string): Promise<number> => (await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM bisync.runs`))[0]?.n ?? -1;

describe('plan --out FILE and apply --plan FILE: what was reviewed is what runs, or nothing runs', () => {
  const dbs = useFreshDatabases('saved_plan');
  const dir = mkdtempSync(join(tmpdir(), 'bisync-saved-plan-'));
  let file = '';

  it('the plan summary says how many rows wait past the watermark, and that a full read is not counted', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 4);
    file = jobsConfigFile();
    expect((await runCli(['apply', '--config', file], envFor(dbs))).code).toBe(0);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9000, 1, 'phone', 'open', 'M')`);
    expect((await runCli(['apply', '--config', file], envFor(dbs))).code).toBe(0);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at) VALUES (9001, 1, 'phone 2', 'open', 'M', now() + interval '1 second')`);

    const plan = await runCli(['plan', '--config', file], envFor(dbs));

    expect(plan.code).toBe(0);
    const summary = plan.stdout.slice(0, plan.stdout.indexOf('The SQL each step runs follows'));
    expect(summary).toMatch(/job reverse: cloud public\.job → desktop public\.job\n\s+incremental: .*\n\s+rows waiting: 1 on cloud past the watermark\n/);
    expect(summary).toMatch(/job forward: desktop public\.job → cloud public\.job\n\s+full: .*\n\s+rows waiting: not counted \(full read\)\n/);
  });

  it('apply --plan FILE runs exactly the saved plan (same hash, recorded in runs)', async () => {
    const saved = join(dir, 'reverse.plan.json');
    const plan = await runCli(['plan', '--direction', 'reverse', '--out', saved, '--format', 'json', '--config', file], envFor(dbs));
    expect(plan.code).toBe(0);
    expect(plan.stderr).toContain(`bisync apply --plan ${saved} runs exactly it`);
    const hash = (JSON.parse(plan.stdout) as { hash: string }).hash;

    const applied = await runCli(['apply', '--plan', saved, '--json', '--config', file], envFor(dbs));

    expect(applied.code, applied.stderr).toBe(0);
    const report = JSON.parse(applied.stdout) as { planHash: string; steps: { table: string; direction: string }[] };
    expect(report.planHash).toBe(hash);
    expect(report.steps.map((s) => `${s.table} ${s.direction}`)).toEqual(['client reverse', 'job reverse']);
    expect(await query(dbs.desktopUrl, `SELECT title FROM job WHERE job_id = 9001`)).toEqual([{ title: 'phone 2' }]);
    expect(await query<{ plan_hash: string }>(dbs.desktopUrl, `SELECT DISTINCT plan_hash FROM bisync.runs WHERE run_id = (SELECT run_id FROM bisync.runs ORDER BY started_at DESC LIMIT 1)`)).toEqual([{ plan_hash: hash }]);

    // The run moved job reverse's watermark: the same file is now stale.
    const runs = await runsSoFar(dbs.desktopUrl);
    const again = await runCli(['apply', '--plan', saved, '--config', file], envFor(dbs));
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/the saved plan [0-9a-f]{12} no longer matches the databases, so nothing was run: job reverse: watermark was \S+, is \S+/);
    expect(again.stderr).toContain('review a new plan (bisync plan --out FILE), then bisync apply --plan FILE');
    expect(await runsSoFar(dbs.desktopUrl)).toBe(runs);
  });

  it('apply --plan FILE refuses with exit 4, naming the table, after a column was added since the plan was saved', async () => {
    const saved = join(dir, 'all.plan.json');
    expect((await runCli(['plan', '--out', saved, '--format', 'sql', '--config', file], envFor(dbs))).code).toBe(0);
    await query(dbs.cloudUrl, `ALTER TABLE client ADD COLUMN phone text`);
    const runs = await runsSoFar(dbs.cloudUrl);

    const applied = await runCli(['apply', '--plan', saved, '--config', file], envFor(dbs));

    expect(applied.code).toBe(4);
    expect(applied.stderr).toContain('no longer matches the databases, so nothing was run: table "client" changed on cloud (its columns, keys, constraints, triggers or privileges)');
    expect(await runsSoFar(dbs.cloudUrl)).toBe(runs);
  });

  it('apply --plan with --table is a usage error (exit 2): the saved plan fixes the tables', async () => {
    const saved = join(dir, 'fresh.plan.json');
    expect((await runCli(['plan', '--out', saved, '--format', 'sql', '--config', file], envFor(dbs))).code).toBe(0);
    const applied = await runCli(['apply', '--plan', saved, '--table', 'job', '--config', file], envFor(dbs));
    expect(applied.code).toBe(2);
    expect(applied.stderr).toContain('--plan runs the saved plan with its own direction, tables and mode; --table cannot change them');
  });
});
