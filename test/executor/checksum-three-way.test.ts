/**
 * SPEC §8 with SPEC §7: checksum-first on an edits: both table read in full. Each database sums,
 * per bucket of keys, the merge's fingerprint of every key it holds settled (its row and its own
 * copy of the base agree, no conflict parked there) and a value the other side never sends for
 * any other key; only buckets that differ are read and merged, exactly as a full read merges them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { StepResult } from '../../src/executor/run-step.js';
import { ThreeWayPair } from '../three-way/three-way-fixture.js';

const pairs: ThreeWayPair[] = [];
afterAll(async () => {
  for (const pair of pairs) await pair.drop();
});

const step = (steps: readonly StepResult[], direction: 'forward' | 'reverse'): StepResult => {
  const found = steps.find((s) => s.direction === direction);
  if (found === undefined) throw new Error(`no ${direction} step`);
  return found;
};

describe('checksum-first on an edits: both table needs the same column types on both sides', () => {
  it('checksum-first on an edits: both table: a type difference between the sides reads in full and says why', async () => {
    const pair = await ThreeWayPair.create('ck3_types', { cloudTitleType: 'varchar(200)' });
    pairs.push(pair);
    await pair.sql('desktop', `INSERT INTO job SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 300) AS i`);
    await pair.apply('both');
    const report = await pair.apply('both');
    for (const direction of ['forward', 'reverse'] as const) {
      const s = step(report.steps, direction);
      expect(s.checksum).toBeUndefined();
      expect(s, `${direction} reads every row`).toMatchObject({ status: 'succeeded', read: 300, unchanged: 300, updated: 0 });
      expect(s.reason).toMatch(/no checksum compare: column title is (text on one side and character varying\(200\)|character varying\(200\) on one side and text) on the other/);
    }
  });
});
