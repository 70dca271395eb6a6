/**
 * `timestamps: { desktop: xmin }` together with `edits: both` (issue 10): the desktop is read by row
 * xmin, the cloud by updated_at. Each side's edits travel, an edit on both sides is parked, a write
 * landing during a run is read by the next one, and a delete (invisible to xmin) travels on a full read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

let pair: ThreeWayPair;
beforeAll(async () => {
  pair = await ThreeWayPair.create('tw_xmin', { cursors: true, desktopXmin: true });
  await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open'], [3, 'three', 'Open'], [4, 'four', 'Open']]);
});
afterAll(async () => await pair.drop());

describe('edits: both with the desktop read by xmin', () => {
  it('an edit on each side travels; forward reads the desktop incrementally by xmin', async () => {
    await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id = 1`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id = 2`);

    const report = await pair.apply('both');

    const forward = report.steps.find((s) => s.direction === 'forward');
    expect(forward?.mode).toBe('incremental');
    expect(forward?.reason).toMatch(/xmin on desktop/);
    expect(forward).toMatchObject({ read: 1, updated: 1 });
    expect(report.steps.find((s) => s.direction === 'reverse')).toMatchObject({ mode: 'incremental', updated: 1, conflicts: 0 });
    expect(await pair.jobs('desktop')).toEqual(await pair.jobs('cloud'));
    expect(await pair.job('desktop', 2)).toMatchObject({ status: 'phone' });
    expect(await pair.job('cloud', 1)).toMatchObject({ status: 'office' });
  });

  it("the rows reverse wrote are read back by the next forward and change nothing (no echo, no conflict)", async () => {
    const report = await pair.apply('both');
    expect(report.steps.map((s) => [s.direction, s.inserted + s.updated + s.deleted, s.conflicts])).toEqual([
      ['forward', 0, 0],
      ['reverse', 0, 0],
    ]);
  });

  it('the same row edited differently on both sides is parked, on an xmin read', async () => {
    await pair.sql('desktop', `UPDATE job SET title = 'office three' WHERE job_id = 3`);
    await pair.sql('cloud', `UPDATE job SET title = 'phone three' WHERE job_id = 3`);
    const report = await pair.apply('both');
    expect(report.steps.find((s) => s.direction === 'forward')).toMatchObject({ mode: 'incremental', conflicts: 1 });
    expect(await pair.conflict('cloud', 3)).toMatchObject({ kind: 'update-update' });
    expect(await pair.job('desktop', 3)).toMatchObject({ title: 'office three' });
    expect(await pair.job('cloud', 3)).toMatchObject({ title: 'phone three' });
  });

  it('a desktop edit committed while forward runs is read by the next run, never lost', async () => {
    const first = await apply(pair.config, {
      direction: 'forward',
      afterRead: async () => {
        await pair.sql('desktop', `UPDATE job SET status = 'late office edit' WHERE job_id = 4`);
      },
    });
    expect(first.exitCode).toBe(0);
    expect(await pair.job('cloud', 4)).toMatchObject({ status: 'Open' });

    await pair.apply('both');
    expect(await pair.job('cloud', 4)).toMatchObject({ status: 'late office edit' });
  });

  it('a desktop delete is not seen by an xmin read, and travels on a full read (deletes: mirror)', async () => {
    await pair.sql('desktop', 'DELETE FROM job WHERE job_id = 1');
    await pair.apply('both');
    expect(await pair.job('cloud', 1)).toBeDefined();
    const full = await pair.apply('forward', { mode: 'full' });
    expect(full.steps[0]).toMatchObject({ mode: 'full', deleted: 1 });
    expect(await pair.job('cloud', 1)).toBeUndefined();
  });
});
