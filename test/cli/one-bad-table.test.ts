import { describe, expect, it } from 'vitest';
import type { ApplyReport } from '../../src/commands/apply.js';
import type { StepStatus } from '../../src/commands/status.js';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

const EXTRA_TABLES = `
  - name: invoice
    primary_key: [invoice_id]
    direction: forward
  - name: invoice_line
    primary_key: [line_id]
    direction: forward
    after: [invoice]
`;

describe('one bad table no longer stops every table', () => {
  const dbs = useFreshDatabases('onebad');
  let file = '';

  it('a table missing on the cloud fails with the reason, its dependents are skipped, and every other table syncs (exit 1)', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    await query(dbs.desktopUrl, `CREATE TABLE invoice (invoice_id integer PRIMARY KEY); CREATE TABLE invoice_line (line_id integer PRIMARY KEY, invoice_id integer REFERENCES invoice)`);
    // The cloud has invoice_line but nobody created invoice there.
    await query(dbs.cloudUrl, `CREATE TABLE invoice_line (line_id integer PRIMARY KEY, invoice_id integer, source char(1), created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`);
    file = jobsConfigFile({ jobExtra: EXTRA_TABLES });

    const result = await runCli(['apply', '--json', '--config', file], envFor(dbs));

    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as ApplyReport;
    expect(report.steps.map((s) => `${s.table} ${s.direction} ${s.status}`)).toEqual([
      'client forward succeeded',
      'job forward succeeded',
      'invoice forward failed',
      'invoice_line forward skipped',
      'client reverse succeeded',
      'job reverse succeeded',
    ]);
    expect(report.steps.find((s) => s.table === 'invoice')?.error).toMatch(/sync\.config\.yaml:\d+:\d+: table "invoice" on cloud \(invoice\): table does not exist$/);
    expect(report.steps.find((s) => s.table === 'invoice_line')?.error).toBe('runs after invoice, which cannot run in this direction');
    expect(await query(dbs.cloudUrl, 'SELECT count(*)::int AS n FROM job')).toEqual([{ n: 5 }]);
    expect(report.attention).toEqual([
      expect.stringMatching(/^invoice forward failed: .*table "invoice" on cloud \(invoice\): table does not exist$/),
      'invoice_line forward skipped: runs after invoice, which cannot run in this direction',
    ]);
  });

  it('status shows the failed and the skipped step with their reasons, and exits 1', async () => {
    const result = await runCli(['status', '--json', '--config', file], envFor(dbs));
    expect(result.code).toBe(1);
    const steps = (JSON.parse(result.stdout) as { steps: StepStatus[] }).steps;
    expect(steps.find((s) => s.table === 'invoice')?.lastRun).toMatchObject({ status: 'failed', error: expect.stringMatching(/table does not exist$/) });
    expect(steps.find((s) => s.table === 'invoice_line')?.lastRun).toMatchObject({ status: 'skipped', error: 'runs after invoice, which cannot run in this direction' });
  });

  it('plan prints the steps it can and names the ones it cannot (exit 1)', async () => {
    const result = await runCli(['plan', '--config', file], envFor(dbs));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^-- NOT PLANNED: invoice forward failed: .*table does not exist$/m);
    expect(result.stdout).toMatch(/^-- NOT PLANNED: invoice_line forward skipped: runs after invoice, which cannot run in this direction$/m);
    expect(result.stdout).toMatch(/^-- Step 1\/4: client forward/m);
  });
});
