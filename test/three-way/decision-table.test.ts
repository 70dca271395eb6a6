/**
 * SPEC §7, the decision table of edits: both: one test per row, with the edit made on each side (so
 * each row is exercised by forward and by reverse), on a table without cursor columns and on one with
 * them (incremental after the first run). Real PostgreSQL on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThreeWayPair } from './three-way-fixture.js';

type Side = 'desktop' | 'cloud';
const other = (side: Side): Side => (side === 'desktop' ? 'cloud' : 'desktop');
// The step that carries an edit made on `side` to the other side.
const carrier = (side: Side): 'forward' | 'reverse' => (side === 'desktop' ? 'forward' : 'reverse');

describe.each([
  { label: 'no cursor columns', cursors: false },
  { label: 'cursor columns on both sides', cursors: true },
])('edits: both decision table ($label)', ({ cursors }) => {
  let pair: ThreeWayPair;
  let nextKey = 1;
  const key = (): number => nextKey++;

  beforeAll(async () => {
    pair = await ThreeWayPair.create(cursors ? 'tw_table_cur' : 'tw_table', { cursors });
  });
  afterAll(async () => await pair.drop());

  describe.each([{ side: 'desktop' as Side }, { side: 'cloud' as Side }])('edit made on $side', ({ side }) => {
    it('f_changed_t_unchanged: an edit on one side reaches the other, whoever created the row', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      await pair.sql(side, `UPDATE job SET status = 'done' WHERE job_id = $1`, [k]);

      const report = await pair.apply('both');

      expect(report.steps.find((s) => s.direction === carrier(side))?.updated).toBe(1);
      expect(await pair.job(other(side), k)).toEqual({ job_id: k, title: `job ${k}`, status: 'done' });
      expect(await pair.job(side, k)).toEqual({ job_id: k, title: `job ${k}`, status: 'done' });
    });

    it('f_unchanged_t_changed: a step never reverts an edit its target made', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      await pair.sql(other(side), `UPDATE job SET title = 'edited on target' WHERE job_id = $1`, [k]);

      // Only the step from `side` (unchanged) to the edited side runs.
      const report = await pair.apply(carrier(side), { mode: 'full' });

      expect(report.steps[0]?.updated).toBe(0);
      expect(await pair.job(other(side), k)).toMatchObject({ title: 'edited on target' });
      expect(await pair.job(side, k)).toMatchObject({ title: `job ${k}` });
    });

    it('both_equal: the same edit on both sides writes nothing and agrees', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      // Equal means every synced column, so with cursor columns the same edit carries the same time.
      const edit = cursors ? `UPDATE job SET status = 'same', updated_at = '2030-01-01T00:00:00Z' WHERE job_id = $1` : `UPDATE job SET status = 'same' WHERE job_id = $1`;
      await pair.sql(side, edit, [k]);
      await pair.sql(other(side), edit, [k]);

      const report = await pair.apply('both', { mode: 'full' });

      for (const step of report.steps) expect({ updated: step.updated, inserted: step.inserted }).toEqual({ updated: 0, inserted: 0 });
      expect(await pair.job('desktop', k)).toMatchObject({ status: 'same' });
      expect(await pair.job('cloud', k)).toMatchObject({ status: 'same' });
      expect(await pair.conflict('desktop', k)).toBeUndefined();
      expect(await pair.conflict('cloud', k)).toBeUndefined();
    });

    it('conflict_update_update: different edits on both sides are parked, neither side is changed', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      await pair.sql(side, `UPDATE job SET status = 'mine' WHERE job_id = $1`, [k]);
      await pair.sql(other(side), `UPDATE job SET status = 'theirs' WHERE job_id = $1`, [k]);

      await pair.apply('both');
      const again = await pair.apply('both', { mode: 'full' });

      for (const step of again.steps) expect(step.updated).toBe(0);
      expect(await pair.job(side, k)).toMatchObject({ status: 'mine' });
      expect(await pair.job(other(side), k)).toMatchObject({ status: 'theirs' });
      for (const db of ['desktop', 'cloud'] as const) {
        const parked = await pair.conflict(db, k);
        expect(parked?.kind).toBe('update-update');
        expect(parked?.versions[side]).toMatchObject({ status: 'mine' });
        expect(parked?.versions[other(side)]).toMatchObject({ status: 'theirs' });
      }
    });

    it('f_created_t_absent: a row created on one side is inserted on the other', async () => {
      const k = key();
      await pair.sql(side, `INSERT INTO job (job_id, title, status) VALUES ($1, 'new here', 'open')`, [k]);

      const report = await pair.apply('both');

      expect(report.steps.find((s) => s.direction === carrier(side))?.inserted).toBe(1);
      expect(await pair.job(other(side), k)).toEqual({ job_id: k, title: 'new here', status: 'open' });
    });

    it('conflict_insert_insert: both sides creating the same key differently is a conflict, never an overwrite', async () => {
      const k = key();
      await pair.sql(side, `INSERT INTO job (job_id, title, status) VALUES ($1, 'made here', 'open')`, [k]);
      await pair.sql(other(side), `INSERT INTO job (job_id, title, status) VALUES ($1, 'made there', 'open')`, [k]);

      const report = await pair.apply('both');

      for (const step of report.steps) expect(step.conflicts).toBeGreaterThanOrEqual(1);
      expect(await pair.job(side, k)).toMatchObject({ title: 'made here' });
      expect(await pair.job(other(side), k)).toMatchObject({ title: 'made there' });
      for (const db of ['desktop', 'cloud'] as const) expect((await pair.conflict(db, k))?.kind).toBe('insert-insert');
    });

    it('f_deleted_t_unchanged: with deletes: mirror a delete on one side is carried to the other', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      await pair.sql(side, `DELETE FROM job WHERE job_id = $1`, [k]);

      const report = await pair.apply('both', { mode: 'full' });

      expect(report.steps.find((s) => s.direction === carrier(side))?.deleted).toBe(1);
      expect(await pair.job(other(side), k)).toBeUndefined();
      expect(await pair.job(side, k)).toBeUndefined();
      // And it stays deleted: another full run re-creates it nowhere.
      await pair.apply('both', { mode: 'full' });
      expect(await pair.job('desktop', k)).toBeUndefined();
      expect(await pair.job('cloud', k)).toBeUndefined();
    });

    it('conflict_delete_update: a delete on one side against an edit on the other is parked, both sides kept as they are', async () => {
      const k = key();
      await pair.agreed([[k, `job ${k}`, 'open']]);
      await pair.sql(side, `DELETE FROM job WHERE job_id = $1`, [k]);
      await pair.sql(other(side), `UPDATE job SET status = 'edited' WHERE job_id = $1`, [k]);

      await pair.apply('both', { mode: 'full' });
      await pair.apply('both', { mode: 'full' });

      expect(await pair.job(side, k)).toBeUndefined();
      expect(await pair.job(other(side), k)).toMatchObject({ status: 'edited' });
      for (const db of ['desktop', 'cloud'] as const) {
        const parked = await pair.conflict(db, k);
        // Kinds name what the desktop (forward's source) did first.
        expect(parked?.kind, db).toBe(side === 'desktop' ? 'delete-update' : 'update-delete');
        expect(parked?.versions[side], db).toBeNull();
        expect(parked?.versions[other(side)], db).toMatchObject({ status: 'edited' });
      }
    });
  });
});
