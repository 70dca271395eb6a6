import { describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, envFor, loadSample, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

describe('what you planned is what runs', () => {
  const dbs = useFreshDatabases('planhash');

  it('apply runs the plan that plan printed for the same config, catalog and state, and records its hash', async () => {
    await loadSample(dbs, 0.01);
    const planned = await runCli(['plan', '--format', 'json', '--config', EXAMPLE_CONFIG], envFor(dbs));
    expect(planned.code).toBe(0);
    const plan = JSON.parse(planned.stdout) as { hash: string; steps: { table: string; direction: string; hash: string }[] };

    const applied = await runCli(['apply', '--json', '--config', EXAMPLE_CONFIG, '--log-level', 'error'], envFor(dbs));
    expect(applied.code).toBe(0);
    const report = JSON.parse(applied.stdout) as { planHash: string };
    expect(report.planHash).toBe(plan.hash);

    const recorded = await query<{ plan_hash: string }>(dbs.cloudUrl, `SELECT DISTINCT plan_hash FROM bisync.runs`);
    expect(recorded.map((r) => r.plan_hash)).toEqual([plan.hash]);

    // Once a reverse step has read a row its watermark exists, the next plan differs (incremental) — and apply agrees with it again.
    await query(dbs.cloudUrl, `UPDATE learequest SET source = 'M', updated_at = now() WHERE lea_id = (SELECT min(lea_id) FROM learequest)`);
    await runCli(['apply', '--config', EXAMPLE_CONFIG, '--log-level', 'error'], envFor(dbs));
    const next = JSON.parse((await runCli(['plan', '--format', 'json', '--config', EXAMPLE_CONFIG], envFor(dbs))).stdout) as { hash: string };
    expect(next.hash).not.toBe(plan.hash);
    const again = JSON.parse((await runCli(['apply', '--json', '--config', EXAMPLE_CONFIG, '--log-level', 'error'], envFor(dbs))).stdout) as { planHash: string };
    expect(again.planHash).toBe(next.hash);
  });
});
