/**
 * Golden files of the plan for the worked example (sync.config.yaml) against the sample schema, as
 * `bisync plan` prints it. A change to any template, to the compiler or to the plan format shows up
 * here as a readable diff; rerun with UPDATE_GOLDEN=1 to accept an intended one, and review it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { planSql } from '../../src/cli/plan-output.js';
import { planCommand } from '../../src/commands/plan.js';
import type { Plan, PlanStep } from '../../src/compiler/plan-types.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { EXAMPLE_CONFIG, loadSample, testConfig } from '../harness/bisync.js';
import { setDatabaseDefaults, useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { expectGolden, normalised, readGolden } from './helpers.js';

/** A watermark with microseconds: a JavaScript Date would drop the last three digits. */
const WATERMARK = '2026-01-02T03:04:05.123456Z';

function param(step: PlanStep, kind: string, name: string, side?: 'source' | 'target'): string | null | undefined {
  // A step has several settings statements (the horizon's and the read's): the one with this parameter.
  const statement = step.statements.find((s) => s.kind === kind && (side === undefined || s.side === side) && s.params.some((p) => p.name === name));
  return statement?.params.find((p) => p.name === name)?.value;
}

describe('golden plans of the example config against the sample schema', () => {
  const dbs = useFreshDatabases('golden');
  let config: ResolvedConfig;
  let plan: Plan;

  beforeAll(async () => {
    await loadSample(dbs, 0.01);
    // Steps run in each server's own TimeZone (it is a plan parameter): pin it, whatever the machine's.
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'UTC' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York' });
    config = await testConfig(EXAMPLE_CONFIG, dbs);
    // Before any state exists: the first-run plan.
    plan = await planCommand(config, { direction: 'both', tables: [], mode: 'auto' });
  });

  it('plan --direction both prints exactly golden/example-plan.sql', () => {
    const text = planSql(normalised(plan));
    expect(text).not.toContain(config.file);
    expect(text).not.toContain(dbs.desktopUrl);
    expectGolden('example-plan.sql', text);
  });

  it('the plan hash is stable across process runs: it equals the hash recorded in the golden file', () => {
    const recorded = /^-- bisync plan ([0-9a-f]{64})$/m.exec(readGolden('example-plan.sql'))?.[1];
    expect(recorded).toBeDefined();
    expect(plan.hash).toBe(recorded);
  });

  it('incremental plan: a watermark read from the state table keeps its microseconds in the parameters (golden/example-incremental-plan.*)', async () => {
    // Create the state on the desktop (the reverse target) with the plan's own bootstrap, and store
    // a watermark as a run would have; then plan as `bisync plan --table climaster` does.
    const first = await planCommand(config, { direction: 'reverse', tables: ['climaster'], mode: 'auto' });
    const reverse = first.steps[0];
    if (reverse === undefined) throw new Error('no reverse step for climaster');
    await withClient(dbs.desktopUrl, async (client) => {
      for (const s of reverse.bootstrap) await client.query(s.sql, s.params.map((p) => p.value));
      // (The bootstrap claimed the step's row, for its lock.)
      await client.query('INSERT INTO bisync.state (table_name, direction, watermark) VALUES ($1, $2, $3) ON CONFLICT (table_name, direction) DO UPDATE SET watermark = EXCLUDED.watermark', [
        'climaster',
        'reverse',
        WATERMARK,
      ]);
    });

    // The forward step has run before too (its row of state on the cloud): it compares by checksum first (SPEC §8).
    const forward = (await planCommand(config, { direction: 'forward', tables: ['climaster'], mode: 'auto' })).steps[0];
    if (forward === undefined) throw new Error('no forward step for climaster');
    await withClient(dbs.cloudUrl, async (client) => {
      for (const s of forward.bootstrap) await client.query(s.sql, s.params.map((p) => p.value));
    });

    const incremental = await planCommand(config, { direction: 'both', tables: ['climaster'], mode: 'auto' });
    expect(incremental.steps.map((s) => `${s.table} ${s.direction} ${s.mode}`)).toEqual(['climaster forward full', 'climaster reverse incremental']);
    expect(incremental.steps[0]?.compare).toBe('checksum');
    const step = incremental.steps[1] as PlanStep;
    expect(step.watermark).toBe(WATERMARK);
    expect(param(step, 'settings', 'watermark', 'source')).toBe(WATERMARK);
    expect(param(step, 'settings', 'lookback', 'source')).toBe('5 seconds');
    expect(param(step, 'record-run', 'watermark before')).toBe(WATERMARK);
    expect(step.reason).toContain(WATERMARK);

    // The text the plan carries denotes exactly the stored instant, to the microsecond.
    const same = await withClient(dbs.desktopUrl, async (client) =>
      (await client.query<{ same: boolean }>('SELECT watermark = $1::timestamptz AS same FROM bisync.state WHERE table_name = $2', [WATERMARK, 'climaster'])).rows[0]?.same,
    );
    expect(same).toBe(true);

    expectGolden('example-incremental-plan.sql', planSql(normalised(incremental)));
    expectGolden('example-incremental-plan.json', `${JSON.stringify(normalised(incremental), null, 2)}\n`);
  });

  it('checksum-first plan of an edits: both table that has run before (golden/example-checksum-both-plan.sql)', async () => {
    // jobshead forward's row of state on the cloud, as its first run leaves it: the next plan compares by checksum first.
    const first = (await planCommand(config, { direction: 'forward', tables: ['jobshead'], mode: 'auto' })).steps[0];
    if (first === undefined) throw new Error('no forward step for jobshead');
    await withClient(dbs.cloudUrl, async (client) => {
      for (const s of first.bootstrap) await client.query(s.sql, s.params.map((p) => p.value));
    });
    const again = await planCommand(config, { direction: 'forward', tables: ['jobshead'], mode: 'auto' });
    const step = again.steps[0] as PlanStep;
    expect(step.compare).toBe('checksum');
    expect(step.edits).toBe('both');
    expect(step.reason).toMatch(/checksum-first: each database sums/);
    expect(step.statements.filter((s) => s.kind === 'bucket-checksums').map((s) => s.side)).toEqual(['target', 'source']);
    expectGolden('example-checksum-both-plan.sql', planSql(normalised(again)));
  });
});
