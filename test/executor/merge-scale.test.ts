/**
 * The edits: owner merge with collision safety (the base records every row a step wrote or found
 * equal): the rows found equal are fingerprinted once, not once per staged row. Without
 * `agreed AS MATERIALIZED` PostgreSQL inlined that list into the join that writes the base and ran
 * it again for every staged row (n² target rows; a reverse re-reading 150 equal workdiary rows took
 * 0.3–0.6 s in its merge alone, and it grows with the square of the lookback window's rows).
 */
import { describe, expect, it } from 'vitest';
import { planCommand } from '../../src/commands/plan.js';
import { statement, values } from '../../src/executor/statements.js';
import { EXAMPLE_CONFIG, apply, loadSample, query, testConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

const dbs = useFreshDatabases('merge_scale');

interface PlanNode {
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  Plans?: PlanNode[];
}

/** Rows read from `relation` over the whole plan: each scan node's rows times its loops. */
function rowsScanned(node: PlanNode, relation: string): number {
  const here = node['Relation Name'] === relation ? (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 0) : 0;
  return here + (node.Plans ?? []).reduce((n, child) => n + rowsScanned(child, relation), 0);
}

describe('edits: owner merge with collision safety', () => {
  it('reads each target row a bounded number of times however many staged rows it finds equal (no per-row rescan)', async () => {
    await loadSample(dbs, 0.02);
    const config = await testConfig(EXAMPLE_CONFIG, dbs);
    await apply(config, { direction: 'forward' });
    // Rows the phone made, carried down by reverse: the base then records them on the desktop.
    const made = 200;
    await query(
      dbs.cloudUrl,
      `INSERT INTO workdiary (wd_id, staff_id, job_id, work_date, hours, description, billable, source, created_at, updated_at)
       SELECT 1000000000 + wd_id, staff_id, job_id, work_date, hours, description, billable, 'M', now(), now()
         FROM workdiary ORDER BY wd_id LIMIT ${made}`,
    );
    const reverse = await apply(config, { direction: 'reverse', tables: ['workdiary'] });
    expect(reverse.steps[0]).toMatchObject({ status: 'succeeded', inserted: made });

    // The merge of a step that re-reads them (the lookback): every staged row equal to the desktop's.
    const plan = await planCommand(config, { direction: 'reverse', tables: ['workdiary'], mode: 'auto' });
    const step = plan.steps[0];
    if (step === undefined) throw new Error('no reverse step for workdiary');
    const merge = statement(step, 'merge');
    const staging = statement(step, 'create-staging');
    const analyze = statement(step, 'analyze-staging');
    const explained = await withClient(dbs.desktopUrl, async (c) => {
      await c.query('BEGIN');
      await c.query(staging.sql, values(staging));
      await c.query(
        `INSERT INTO bisync_stage (wd_id, staff_id, job_id, work_date, hours, description, billable)
         SELECT wd_id::text, staff_id::text, job_id::text, work_date::text, hours::text, description::text, billable::text
           FROM public.workdiary WHERE wd_id >= 1000000000 ORDER BY wd_id`,
      );
      await c.query(analyze.sql, values(analyze));
      const r = await c.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${merge.sql}`,
        values(merge, { 'first staged row': 1, 'last staged row': made }),
      );
      await c.query('ROLLBACK');
      return r.rows[0]?.['QUERY PLAN'][0]?.Plan;
    });
    if (explained === undefined) throw new Error('no plan');
    const scanned = rowsScanned(explained, 'workdiary');
    expect(scanned).toBeGreaterThanOrEqual(made);
    // A few joins to the target per staged row (classified, the equal rows' fingerprints, …): linear, not n².
    expect(scanned).toBeLessThanOrEqual(10 * made);
  });
});
