/**
 * SPEC §7: conflicts policies (park, a database, newest), parked keys left alone and self-clearing,
 * the first run on two populated databases, and max_delete_fraction on deletes in both directions.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { planCommand } from '../../src/commands/plan.js';
import { ThreeWayPair } from './three-way-fixture.js';

const pairs: ThreeWayPair[] = [];
const make = async (label: string, options: Parameters<typeof ThreeWayPair.create>[1]): Promise<ThreeWayPair> => {
  const pair = await ThreeWayPair.create(label, options);
  pairs.push(pair);
  return pair;
};
afterAll(async () => {
  for (const pair of pairs) await pair.drop();
});

describe('seed 002 test case 3: the later version wins on both sides (conflicts: newest)', () => {
  it('office edits job 300 after the phone did: forward writes the office version and both sides end with On Hold', async () => {
    const pair = await make('tw_seed002', { cursors: true, conflicts: 'newest' });
    // 1. Desktop has Job #300 (status='Open', updated_at=T1), synced.
    await pair.agreed([[300, 'Job 300', 'Open']]);
    // 2. Mobile updates Job #300 (status='Completed', updated_at=T2, T2 > T1).
    await pair.sql('cloud', `UPDATE job SET status = 'Completed' WHERE job_id = 300`);
    // 3. Desktop updates Job #300 again (status='On Hold', updated_at=T3, T3 > T2).
    await pair.sql('desktop', `UPDATE job SET status = 'On Hold' WHERE job_id = 300`);
    // 4. Run forward sync.
    await pair.apply('forward');
    // 5. The desktop version wins (later timestamp).
    expect((await pair.job('cloud', 300))?.status).toBe('On Hold');
    expect((await pair.job('desktop', 300))?.status).toBe('On Hold');
    await pair.apply('both');
    expect((await pair.job('cloud', 300))?.status).toBe('On Hold');
    expect((await pair.job('desktop', 300))?.status).toBe('On Hold');
    expect(await pair.conflicts('cloud')).toEqual([]);
  });

  it('the other way round: the phone edits after the office, and the phone version reaches the desktop', async () => {
    const pair = await make('tw_seed002b', { cursors: true, conflicts: 'newest' });
    await pair.agreed([[300, 'Job 300', 'Open']]);
    await pair.sql('desktop', `UPDATE job SET status = 'On Hold' WHERE job_id = 300`);
    await pair.sql('cloud', `UPDATE job SET status = 'Completed' WHERE job_id = 300`);

    const report = await pair.apply('both');

    expect(report.steps.find((s) => s.direction === 'forward')?.updated).toBe(0);
    expect((await pair.job('desktop', 300))?.status).toBe('Completed');
    expect((await pair.job('cloud', 300))?.status).toBe('Completed');
  });

  it('a tie on the cursor value parks the conflict', async () => {
    const pair = await make('tw_newest_tie', { cursors: true, conflicts: 'newest' });
    await pair.agreed([[1, 'one', 'Open']]);
    await pair.sql('desktop', `UPDATE job SET status = 'A', updated_at = '2031-01-01T00:00:00Z' WHERE job_id = 1`);
    await pair.sql('cloud', `UPDATE job SET status = 'B', updated_at = '2031-01-01T00:00:00Z' WHERE job_id = 1`);

    await pair.apply('both');

    expect((await pair.job('desktop', 1))?.status).toBe('A');
    expect((await pair.job('cloud', 1))?.status).toBe('B');
    expect((await pair.conflict('cloud', 1))?.kind).toBe('update-update');
  });
});

describe('conflicts: <database> keeps that side’s version on both sides', () => {
  it('conflicts: cloud — an update-update keeps the phone version, a delete-update keeps the phone edit', async () => {
    const pair = await make('tw_keep_cloud', { conflicts: 'cloud' });
    await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
    await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id = 1`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id = 1`);
    await pair.sql('desktop', `DELETE FROM job WHERE job_id = 2`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone edit' WHERE job_id = 2`);

    await pair.apply('both', { mode: 'full' });
    await pair.apply('both', { mode: 'full' });

    expect(await pair.jobs('desktop')).toEqual(await pair.jobs('cloud'));
    expect(await pair.job('desktop', 1)).toMatchObject({ status: 'phone' });
    expect(await pair.job('desktop', 2)).toMatchObject({ status: 'phone edit' });
    expect(await pair.conflicts('desktop')).toEqual([]);
    expect(await pair.conflicts('cloud')).toEqual([]);
  });

  it('conflicts: desktop — an insert-insert keeps the office row, a delete-update carries the office delete', async () => {
    const pair = await make('tw_keep_desktop', { conflicts: 'desktop' });
    await pair.agreed([[2, 'two', 'Open']]);
    await pair.sql('desktop', `INSERT INTO job VALUES (5000, 'office 5000', 'Open')`);
    await pair.sql('cloud', `INSERT INTO job (job_id, title, status) VALUES (5000, 'phone 5000', 'Open')`);
    await pair.sql('desktop', `DELETE FROM job WHERE job_id = 2`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone edit' WHERE job_id = 2`);

    await pair.apply('both', { mode: 'full' });
    await pair.apply('both', { mode: 'full' });

    expect(await pair.jobs('cloud')).toEqual([{ job_id: 5000, title: 'office 5000', status: 'Open' }]);
    expect(await pair.jobs('desktop')).toEqual(await pair.jobs('cloud'));
  });
});

describe('parked conflicts', () => {
  it('a parked key is left alone by later runs, and clears itself once both sides are made equal by hand', async () => {
    const pair = await make('tw_parked', {});
    await pair.agreed([[1, 'one', 'Open']]);
    await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id = 1`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id = 1`);
    await pair.apply('both');
    // The desktop goes back to the agreed version: without the parking, forward's row would now
    // be "unchanged" and the phone's edit would travel down. Parked, nothing moves.
    await pair.sql('desktop', `UPDATE job SET status = 'Open' WHERE job_id = 1`);
    await pair.apply('both', { mode: 'full' });
    expect((await pair.job('desktop', 1))?.status).toBe('Open');
    expect((await pair.job('cloud', 1))?.status).toBe('phone');
    expect(await pair.conflict('desktop', 1)).toBeDefined();

    await pair.sql('desktop', `UPDATE job SET status = 'phone' WHERE job_id = 1`);
    const report = await pair.apply('both');

    for (const step of report.steps) expect(step.conflicts).toBe(0);
    expect(await pair.conflict('desktop', 1)).toBeUndefined();
    expect(await pair.conflict('cloud', 1)).toBeUndefined();
    // Agreed again: a later edit on one side travels as usual.
    await pair.sql('cloud', `UPDATE job SET status = 'done' WHERE job_id = 1`);
    await pair.apply('both');
    expect((await pair.job('desktop', 1))?.status).toBe('done');
  });
});

describe('first run on two populated databases (no base yet)', () => {
  it('equal rows are recorded without writes, one-sided rows are copied, differing rows are insert-insert conflicts', async () => {
    const pair = await make('tw_first_run', {});
    await pair.sql('desktop', `INSERT INTO job VALUES (1, 'same', 'Open'), (2, 'office only', 'Open'), (3, 'office says', 'Open')`);
    await pair.sql('cloud', `INSERT INTO job (job_id, title, status) VALUES (1, 'same', 'Open'), (4, 'phone only', 'Open'), (3, 'phone says', 'Open')`);

    const report = await pair.apply('both');

    const forward = report.steps.find((s) => s.direction === 'forward');
    const reverse = report.steps.find((s) => s.direction === 'reverse');
    expect({ inserted: forward?.inserted, updated: forward?.updated, unchanged: forward?.unchanged, conflicts: forward?.conflicts }).toEqual({ inserted: 1, updated: 0, unchanged: 1, conflicts: 1 });
    expect({ inserted: reverse?.inserted, updated: reverse?.updated, conflicts: reverse?.conflicts }).toEqual({ inserted: 1, updated: 0, conflicts: 1 });
    expect((await pair.jobs('desktop')).map((j) => j.title)).toEqual(['same', 'office only', 'office says', 'phone only']);
    expect((await pair.jobs('cloud')).map((j) => j.title)).toEqual(['same', 'office only', 'phone says', 'phone only']);
    expect((await pair.conflict('cloud', 3))?.kind).toBe('insert-insert');
    // The equal row got a base without being written: a no-change rerun writes nothing.
    const rerun = await pair.apply('both');
    for (const step of rerun.steps) expect(step.inserted + step.updated + step.deleted).toBe(0);
  });
});

describe('deletes both ways are guarded by max_delete_fraction', () => {
  for (const side of ['desktop', 'cloud'] as const) {
    it(`deleting more than max_delete_fraction on the ${side} is refused (exit 4, nothing deleted) unless --allow-deletes`, async () => {
      const pair = await make(`tw_fraction_${side}`, { maxDeleteFraction: 0.2 });
      await pair.agreed(Array.from({ length: 10 }, (_, i) => [i + 1, `job ${i + 1}`, 'Open'] as [number, string, string]));
      await pair.sql(side, `DELETE FROM job WHERE job_id <= 5`);
      const other = side === 'desktop' ? 'cloud' : 'desktop';

      const refused = await pair.apply('both', { mode: 'full', allowDeletes: false });

      expect(refused.exitCode).toBe(4);
      expect(refused.steps.find((s) => s.direction === (side === 'desktop' ? 'forward' : 'reverse'))?.status).toBe('refused');
      expect(await pair.jobs(other)).toHaveLength(10);
      // Never re-created on the side that deleted them, either.
      expect(await pair.jobs(side)).toHaveLength(5);

      const allowed = await pair.apply('both', { mode: 'full', allowDeletes: true });

      expect(allowed.exitCode).toBe(0);
      expect(await pair.jobs(other)).toHaveLength(5);
    });
  }
});

describe('deletes: keep with edits: both', () => {
  it('a delete is not carried, and the row is never re-created on the side that deleted it', async () => {
    const pair = await make('tw_keep', { deletes: 'keep' });
    await pair.agreed([[1, 'one', 'Open']]);
    await pair.sql('cloud', `DELETE FROM job WHERE job_id = 1`);
    await pair.apply('both', { mode: 'full' });
    await pair.sql('desktop', `UPDATE job SET status = 'office edit' WHERE job_id = 1`);
    await pair.apply('both', { mode: 'full' });

    expect(await pair.job('cloud', 1)).toBeUndefined();
    expect(await pair.job('desktop', 1)).toMatchObject({ status: 'office edit' });
  });

  it('a step that never deletes does not count every row of its target first (only deletes: mirror measures max_delete_fraction)', async () => {
    const kept = await make('tw_keep_count', { deletes: 'keep' });
    const mirrored = await make('tw_mirror_count', { deletes: 'mirror' });
    for (const [pair, counts] of [[kept, false], [mirrored, true]] as const) {
      await pair.agreed([[1, 'one', 'Open']]);
      const plan = await planCommand(pair.config, { direction: 'both', tables: [], mode: 'full' });
      for (const step of plan.steps) expect(step.statements.some((s) => s.kind === 'guard-count'), `${step.deletes} ${step.direction}`).toBe(counts);
    }
    // Without the count, a keep step still writes (and deletes nothing): an edit on each side is carried.
    await kept.sql('desktop', `UPDATE job SET title = 'office edit' WHERE job_id = 1`);
    const report = await kept.apply('both', { mode: 'full' });
    expect(report.exitCode).toBe(0);
    expect(await kept.job('cloud', 1)).toMatchObject({ title: 'office edit' });
  });
});

describe('a no-change rerun writes nothing, the base included', () => {
  // Found by the edits: both model test: each step writes only its target's copy of the base, so a
  // row carried desktop ← cloud had no copy on the cloud, and the next forward run wrote one (a
  // base write on every rerun after a change). The fresher copy is what the merge compares with,
  // so a copy is written only when the fresher one does not already say what both sides hold.
  for (const [side, label] of [['cloud', 'tw_rerun_c'], ['desktop', 'tw_rerun_d']] as const) {
    it(`after a ${side} edit and an insert carried in one run, the next run writes no base row on either side`, async () => {
      const pair = await make(label, {});
      await pair.agreed([[1, 'one', 'Open']]);
      await pair.sql(side, `UPDATE job SET status = 'edited' WHERE job_id = 1`);
      await pair.sql(side, `INSERT INTO job (job_id, title, status) VALUES (2, 'new', 'Open')`);
      await pair.apply('both', { mode: 'full' });
      const bases = async (): Promise<unknown[]> => [
        ...(await pair.sql('desktop', 'SELECT key, fingerprint, generation, agreed_at FROM bisync.base ORDER BY key')),
        ...(await pair.sql('cloud', 'SELECT key, fingerprint, generation, agreed_at FROM bisync.base ORDER BY key')),
      ];
      const before = await bases();

      const rerun = await pair.apply('both', { mode: 'full' });

      for (const step of rerun.steps) expect(step.inserted + step.updated + step.deleted).toBe(0);
      expect(await bases()).toEqual(before);
      expect(await pair.job('desktop', 1)).toMatchObject({ status: 'edited' });
      expect(await pair.job('cloud', 2)).toMatchObject({ title: 'new' });
    });
  }
});

describe('a key parked on either database is left alone by both directions', () => {
  // Found by the edits: both model test: each step parks a conflict in its target's conflicts table
  // and used to look only there, so a key parked by reverse (on the desktop) was not parked for
  // forward. After the phone deleted its version of an insert-insert conflict, forward copied the
  // office's version to the cloud while the conflict was still pending.
  for (const [parkedBy, writer] of [['reverse', 'cloud'], ['forward', 'desktop']] as const) {
    it(`an insert-insert conflict parked by ${parkedBy} stays parked after the ${writer} deletes its version, and its versions say so`, async () => {
      const pair = await make(`tw_parked_${parkedBy}`, {});
      await pair.sql('desktop', `INSERT INTO job VALUES (1, 'office job', 'Open')`);
      await pair.sql('cloud', `INSERT INTO job (job_id, title, status) VALUES (1, 'phone job', 'Open')`);
      await pair.apply(parkedBy);
      const parkedOn = parkedBy === 'reverse' ? 'desktop' : 'cloud';
      expect((await pair.conflict(parkedOn, 1))?.kind).toBe('insert-insert');
      await pair.sql(writer, `DELETE FROM job WHERE job_id = 1`);

      await pair.apply(parkedBy === 'reverse' ? 'forward' : 'reverse', { mode: 'full' });

      expect(await pair.job(writer, 1), `the ${writer} keeps its delete while the conflict is pending`).toBeUndefined();
      const kept = writer === 'cloud' ? 'desktop' : 'cloud';
      expect(await pair.job(kept, 1)).toMatchObject({ title: writer === 'cloud' ? 'office job' : 'phone job' });
      expect(await pair.conflict(parkedOn, 1)).toBeDefined();

      // Each conflict keeps showing what the two sides hold: on a full read both databases'
      // conflicts say the ${writer} has no version now (found by the model test as well).
      await pair.apply('both', { mode: 'full' });
      for (const side of ['desktop', 'cloud'] as const) {
        const parked = await pair.conflict(side, 1);
        expect(parked?.versions[writer], `${side}'s conflict: the ${writer} deleted its version`).toBeNull();
        expect(parked?.versions[kept]).toMatchObject({ title: writer === 'cloud' ? 'office job' : 'phone job' });
      }
      expect(await pair.job(writer, 1)).toBeUndefined();
    });
  }
});
