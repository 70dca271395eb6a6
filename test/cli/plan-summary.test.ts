import { describe, expect, it } from 'vitest';
import { envFor, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile } from '../executor/jobs-fixture.js';

describe('plan opens with what it will do, the SQL after it', () => {
  const dbs = useFreshDatabases('plansummary');

  it('plan starts with a summary per step (direction, mode and why, how it writes, what it could delete), then the SQL; --format sql prints only the SQL', async () => {
    await createJobsSchema(dbs);
    const file = jobsConfigFile({ jobExtra: '    deletes: mirror' });

    const text = await runCli(['plan', '--config', file], envFor(dbs));

    expect(text.code).toBe(0);
    const [summary, sql] = text.stdout.split('The SQL each step runs follows (bisync plan --format sql prints only the SQL).');
    expect(summary).toMatch(/^bisync plan [0-9a-f]{12} \(.*sync\.config\.yaml\): 4 steps\n/);
    expect(summary).toContain(
      [
        '  2. job forward: desktop public.job → cloud public.job',
        '     full: no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare',
        '     rows waiting: not counted (full read)',
        '     writes: upsert (new rows inserted, owned rows updated when they differ); deletes: mirror — after a full read, may delete rows on cloud this direction owns that desktop no longer has (refused above 10% of them without --allow-deletes)',
      ].join('\n'),
    );
    expect(summary).toContain('  4. job reverse: cloud public.job → desktop public.job\n     full: no watermark yet (first run, or nothing read so far): every row is read');
    expect(sql).toMatch(/^-- bisync plan [0-9a-f]{64}$/m);

    const only = await runCli(['plan', '--format', 'sql', '--config', file], envFor(dbs));
    expect(only.stdout.startsWith('-- bisync plan ')).toBe(true);
    expect(only.stdout).toBe(sql?.replace(/^\n+/, ''));
  });
});
