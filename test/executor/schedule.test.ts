import { describe, expect, it } from 'vitest';
import type { PlanStep } from '../../src/compiler/plan-types.js';
import { runScheduled } from '../../src/executor/schedule.js';
import { EXAMPLE_CONFIG, apply, loadSample, query, testConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const step = (table: string, direction: 'forward' | 'reverse', after: string[] = []): PlanStep =>
  ({ table, direction, after }) as unknown as PlanStep;

describe('step scheduling with --concurrency', () => {
  it('never runs more steps at once than allowed, honours after, runs every forward step before any reverse step, and reports in plan order', async () => {
    const steps = [
      step('a', 'forward'),
      step('b', 'forward'),
      step('c', 'forward', ['a']),
      step('d', 'forward', ['c', 'b']),
      step('e', 'forward'),
      step('a', 'reverse'),
      step('c', 'reverse', ['a']),
    ];
    const events: string[] = [];
    let running = 0;
    let peak = 0;
    const results = await runScheduled(steps, 2, async (s) => {
      running++;
      peak = Math.max(peak, running);
      events.push(`start ${s.table} ${s.direction}`);
      await new Promise((r) => setTimeout(r, s.table === 'b' ? 15 : 5));
      events.push(`end ${s.table} ${s.direction}`);
      running--;
      return `${s.table}/${s.direction}`;
    });

    expect(peak).toBe(2);
    expect(results).toEqual(['a/forward', 'b/forward', 'c/forward', 'd/forward', 'e/forward', 'a/reverse', 'c/reverse']);
    const at = (e: string): number => events.indexOf(e);
    expect(at('start c forward')).toBeGreaterThan(at('end a forward'));
    expect(at('start d forward')).toBeGreaterThan(Math.max(at('end c forward'), at('end b forward')));
    const lastForwardEnd = Math.max(...events.map((e, i) => (e.startsWith('end') && e.endsWith('forward') ? i : -1)));
    expect(at('start a reverse')).toBeGreaterThan(lastForwardEnd);
    expect(at('start c reverse')).toBeGreaterThan(at('end a reverse'));
  });

  describe('on real databases', () => {
    const dbs = useFreshDatabases('concurrency');

    it('the example config synced with --concurrency 3 ends with the same data and no failures', async () => {
      await loadSample(dbs, 0.02);
      const config = await testConfig(EXAMPLE_CONFIG, dbs);
      const report = await apply(config, { concurrency: 3 });
      expect(report.steps.filter((s) => s.status !== 'succeeded')).toEqual([]);
      expect(report.steps.reduce((n, s) => n + s.rejected, 0)).toBe(0);
      const desktop = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM jobtasks');
      const cloud = await query<{ n: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n FROM jobtasks WHERE source = 'D'`);
      expect(cloud[0]?.n).toBe(desktop[0]?.n);
      const again = await apply(config, { concurrency: 3 });
      expect(again.steps.reduce((n, s) => n + s.inserted + s.updated + s.deleted, 0)).toBe(0);
    });
  });
});
