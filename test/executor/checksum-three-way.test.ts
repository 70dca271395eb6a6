/**
 * SPEC §8 with SPEC §7: checksum-first on an edits: both table read in full. Each database sums,
 * per bucket of keys, the merge's fingerprint of every key it holds settled (its row and its own
 * copy of the base agree, no conflict parked there) and a value the other side never sends for
 * any other key; only buckets that differ are read and merged, exactly as a full read merges them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { StepResult } from '../../src/executor/run-step.js';
import { apply } from '../harness/bisync.js';
import { killBisyncBackends } from '../reliability/kill-sessions.js';
import { ThreeWayPair } from '../three-way/three-way-fixture.js';

const ROWS = 2000;
const pairs: ThreeWayPair[] = [];
afterAll(async () => {
  for (const pair of pairs) await pair.drop();
});

/** A pair holding ROWS jobs on both sides, after one forward and one reverse run (both copies of the base agree). */
async function agreedPair(label: string): Promise<ThreeWayPair> {
  const pair = await ThreeWayPair.create(label, {});
  pairs.push(pair);
  await pair.sql('desktop', `INSERT INTO job SELECT i, 'job ' || i, 'Open' FROM generate_series(1, ${ROWS}) AS i`);
  const first = await pair.apply('both');
  for (const s of first.steps) expect(s.reason, 'a first run reads in full').toMatch(/first run of this step: no checksum compare/);
  return pair;
}

const step = (steps: readonly StepResult[], direction: 'forward' | 'reverse'): StepResult => {
  const found = steps.find((s) => s.direction === direction);
  if (found === undefined) throw new Error(`no ${direction} step`);
  return found;
};

/** Rows both sides hold, as [id, title, status] text, sorted. */
const rowsOf = async (pair: ThreeWayPair, side: 'desktop' | 'cloud'): Promise<string[]> =>
  (await pair.sql(side, 'SELECT job_id, title, status FROM job ORDER BY job_id')).map((r) => `${String(r.job_id)}|${String(r.title)}|${String(r.status)}`);

describe('checksum-first on an edits: both table read in full', () => {
  it('checksum-first on an edits: both table: a no-change forward reads no row once both copies of the base agree', async () => {
    const pair = await agreedPair('ck3_nochange');
    // The steps themselves, not the run-level probe (which would skip them: probe.test.ts).
    const report = await pair.apply('both', { probe: false });
    for (const direction of ['forward', 'reverse'] as const) {
      const s = step(report.steps, direction);
      expect(s.reason, `${direction} says it compares by checksum`).toMatch(/checksum-first: each database sums/);
      expect(s, `${direction}: nothing read, every row unchanged`).toMatchObject({ status: 'succeeded', read: 0, unchanged: ROWS, inserted: 0, updated: 0, deleted: 0, conflicts: 0 });
      expect(s.checksum?.differing, `${direction}: no bucket differs`).toBe(0);
      expect(s.checksum?.buckets).toBeGreaterThan(500);
    }
    expect(await rowsOf(pair, 'cloud')).toEqual(await rowsOf(pair, 'desktop'));
  });

  it('checksum-first on an edits: both table: an edit on either side reads only its bucket and is carried', async () => {
    const pair = await agreedPair('ck3_edit');
    await pair.apply('both');
    await pair.sql('desktop', `UPDATE job SET title = 'office edit' WHERE job_id = 1234`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone edit' WHERE job_id = 77`);

    const report = await pair.apply('both');
    const forward = step(report.steps, 'forward');
    // Forward reads the bucket of each edited key: job 1234 is written, job 77 (the cloud's edit) is protected.
    expect(forward).toMatchObject({ status: 'succeeded', updated: 1, inserted: 0, deleted: 0, protected: 1, unchanged: ROWS - 2 });
    expect(forward.checksum?.differing).toBe(2);
    expect(forward.read).toBeLessThan(20);
    // Reverse: job 1234 is agreed in both copies now; only job 77's bucket differs.
    const reverse = step(report.steps, 'reverse');
    expect(reverse).toMatchObject({ status: 'succeeded', updated: 1, inserted: 0, deleted: 0, unchanged: ROWS - 1 });
    expect(reverse.checksum?.differing).toBe(1);
    expect(reverse.read).toBeLessThan(10);
    expect(await pair.job('cloud', 1234)).toMatchObject({ title: 'office edit', status: 'Open' });
    expect(await pair.job('desktop', 77)).toMatchObject({ title: 'job 77', status: 'phone edit' });
    expect(await rowsOf(pair, 'cloud')).toEqual(await rowsOf(pair, 'desktop'));

    // Carried both ways and agreed: nothing left to read.
    const again = await pair.apply('both');
    for (const direction of ['forward', 'reverse'] as const) expect(step(again.steps, direction)).toMatchObject({ read: 0, unchanged: ROWS, updated: 0 });
  });

  it('checksum-first on an edits: both table: a delete is carried both ways, and a key in a bucket not compared is never deleted', async () => {
    const pair = await agreedPair('ck3_delete');
    // No bucket differs: nothing is staged, and no key of the cloud's or the desktop's base is taken for a delete.
    const quiet = await pair.apply('both');
    expect(quiet.steps.map((s) => `${s.direction} read ${s.read} deleted ${s.deleted}`)).toEqual(['forward read 0 deleted 0', 'reverse read 0 deleted 0']);
    await pair.sql('desktop', 'DELETE FROM job WHERE job_id = 10');
    await pair.sql('cloud', 'DELETE FROM job WHERE job_id = 1500');

    // Staging holds only the keys of the differing buckets; the cloud's copy of the base holds
    // every other key too, and none of them may be taken for a key the desktop deleted.
    const report = await pair.apply('both');
    const forward = step(report.steps, 'forward');
    expect(forward).toMatchObject({ status: 'succeeded', deleted: 1, updated: 0, inserted: 0, protected: 1, unchanged: ROWS - 2 });
    expect(forward.read).toBeLessThan(30);
    const reverse = step(report.steps, 'reverse');
    expect(reverse).toMatchObject({ status: 'succeeded', deleted: 1, updated: 0, inserted: 0, unchanged: ROWS - 2 });
    expect(reverse.read).toBeLessThan(30);
    for (const side of ['desktop', 'cloud'] as const) {
      const left = await pair.sql(side, 'SELECT count(*)::int AS n, count(*) FILTER (WHERE job_id IN (10, 1500))::int AS gone FROM job');
      expect(left[0], `${side} lost exactly the two deleted jobs`).toEqual({ n: ROWS - 2, gone: 0 });
    }
    // The deletes are agreed (NULL in both copies): the next run reads nothing and deletes nothing.
    const again = await pair.apply('both');
    for (const direction of ['forward', 'reverse'] as const) expect(step(again.steps, direction)).toMatchObject({ read: 0, deleted: 0, unchanged: ROWS - 2 });
  });

  it('checksum-first on an edits: both table: a parked conflict keeps its bucket differing and stays parked', async () => {
    const pair = await agreedPair('ck3_parked');
    await pair.apply('both');
    await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id = 5`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id = 5`);
    await pair.apply('both');
    expect((await pair.conflict('cloud', 5))?.kind).toBe('update-update');
    expect((await pair.conflict('desktop', 5))?.kind).toBe('update-update');

    // Parked: read every run (its bucket differs), left alone.
    const parked = await pair.apply('both');
    for (const direction of ['forward', 'reverse'] as const) {
      const s = step(parked.steps, direction);
      expect(s).toMatchObject({ status: 'succeeded', conflicts: 1, updated: 0, inserted: 0, deleted: 0, unchanged: ROWS - 1 });
      expect(s.checksum?.differing).toBe(1);
    }
    expect((await pair.job('desktop', 5))?.status).toBe('office');
    expect((await pair.job('cloud', 5))?.status).toBe('phone');

    // Both people put job 5 back as it was agreed: rows and copies of the base agree on both sides,
    // only the parked conflict keeps the bucket differing, so the merge sees both sides equal and clears it.
    await pair.sql('desktop', `UPDATE job SET status = 'Open' WHERE job_id = 5`);
    await pair.sql('cloud', `UPDATE job SET status = 'Open' WHERE job_id = 5`);
    const cleared = await pair.apply('both');
    expect(step(cleared.steps, 'forward').checksum?.differing).toBe(1);
    expect(await pair.conflicts('cloud')).toEqual([]);
    expect(await pair.conflicts('desktop')).toEqual([]);
  });

  it('checksum-first on an edits: both table: a stale copy of the base (crash between the two commits) makes its bucket differ, never skipped', async () => {
    const pair = await agreedPair('ck3_stale');
    await pair.apply('both');
    const baseRow = `SELECT fingerprint, generation FROM bisync.base WHERE table_name = 'job' AND key = '42'`;
    const before = (await pair.sql('desktop', baseRow))[0];
    await pair.sql('desktop', `UPDATE job SET title = 'office edit' WHERE job_id = 42`);
    expect(step((await pair.apply('forward')).steps, 'forward')).toMatchObject({ updated: 1 });
    // The cloud committed job 42 and its copy of the base; the desktop's copy is put back as it was
    // before the step, as a crash after the cloud's commit leaves it.
    await pair.sql('desktop', `UPDATE bisync.base SET fingerprint = $1, generation = $2 WHERE table_name = 'job' AND key = '42'`, [before?.fingerprint, before?.generation]);
    expect((await pair.sql('desktop', baseRow))[0]).toEqual(before);

    // The desktop's row and its own copy disagree: the bucket differs and is read (both sides hold the same row: nothing to write).
    const forward = step((await pair.apply('forward')).steps, 'forward');
    expect(forward.checksum?.differing).toBe(1);
    expect(forward).toMatchObject({ status: 'succeeded', updated: 0, unchanged: ROWS });
    expect(forward.read).toBeGreaterThanOrEqual(1);

    // The office puts job 42 back as it was: now the desktop's row equals its stale copy, yet it
    // differs from the cloud's row, so the bucket is read, and the fresher copy (the cloud's) shows
    // it is the desktop's edit: carried.
    await pair.sql('desktop', `UPDATE job SET title = 'job 42' WHERE job_id = 42`);
    const back = step((await pair.apply('forward')).steps, 'forward');
    expect(back).toMatchObject({ status: 'succeeded', updated: 1, conflicts: 0 });
    expect(await pair.job('cloud', 42)).toMatchObject({ title: 'job 42' });
    await pair.apply('both');
    expect(await rowsOf(pair, 'cloud')).toEqual(await rowsOf(pair, 'desktop'));
  });
});

describe('checksum-first on an edits: both table: a connection killed mid-step', () => {
  it('checksum-first on an edits: both table: killed during the COPY of the differing buckets, the cloud and both copies of the base are as before, and the rerun carries each edit once', async () => {
    const pair = await agreedPair('ck3_fault');
    await pair.apply('both');
    await pair.sql('desktop', `UPDATE job SET title = title || ' (edited)' WHERE job_id % 100 = 0`);
    const state = async (side: 'desktop' | 'cloud'): Promise<unknown> =>
      (await pair.sql(side, `SELECT md5(string_agg(j::text, ',' ORDER BY job_id)) AS rows, (SELECT md5(string_agg(b::text, ',' ORDER BY key)) FROM bisync.base AS b) AS base FROM job AS j`))[0];
    const before = { desktop: await state('desktop'), cloud: await state('cloud') };

    const killed = await apply(pair.config, {
      direction: 'forward',
      retries: 0,
      duringCopy: async () => {
        expect(await killBisyncBackends(pair.url('cloud'))).toBeGreaterThan(0);
      },
    });
    expect(killed.steps[0]?.reason).toMatch(/checksum-first/);
    expect(killed.steps[0]?.status).toBe('failed');
    expect({ desktop: await state('desktop'), cloud: await state('cloud') }).toEqual(before);

    const rerun = step((await pair.apply('forward')).steps, 'forward');
    expect(rerun).toMatchObject({ status: 'succeeded', updated: 20, inserted: 0, deleted: 0, unchanged: ROWS - 20 });
    expect(rerun.checksum?.differing).toBeGreaterThan(0);
    expect((await pair.sql('cloud', `SELECT count(*)::int AS n FROM job WHERE title LIKE '% (edited)'`))[0]).toEqual({ n: 20 });
    await pair.apply('both');
    expect(step((await pair.apply('both')).steps, 'forward')).toMatchObject({ read: 0, unchanged: ROWS });
  });
});

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
