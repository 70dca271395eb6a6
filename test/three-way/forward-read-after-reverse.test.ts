/**
 * edits: both: a forward step's read of the desktop must be newer than every reverse step that
 * committed on the desktop before forward took its lock. Reverse holds the pair lock (forward's row
 * of state on the cloud) until after its desktop commit, so once forward holds that row no reverse
 * is between its commits; a read whose snapshot was taken before forward's lock was granted may still
 * predate one (forward's lock waits in a pooler's queue or on a slow link while a reverse runs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';
import { connected, until, waiting } from '../harness/lock-waits.js';

let pair: ThreeWayPair;
beforeAll(async () => {
  pair = await ThreeWayPair.create('tw_fwdread');
  await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
});
afterAll(async () => await pair.drop());

describe('edits: both: forward reads the desktop after every reverse step that committed there', () => {
  it('forward never merges a desktop read older than a reverse step that committed before forward took its lock (a phone delete is not undone)', async () => {
    // The phone deletes job 2; a reverse step will carry the delete to the desktop.
    await pair.sql('cloud', 'DELETE FROM job WHERE job_id = 2');

    // Forward's lock on the cloud waits (here on a session holding bisync's state table, as a pooler
    // queue or a slow link delays it). Its state rows are in place, so no bootstrap runs before it;
    // no probe either: this is about the step itself.
    const first = await connected(pair.url('cloud'));
    const other = await connected(pair.url('cloud'));
    try {
      await first.query('BEGIN');
      await first.query('LOCK TABLE bisync.state IN EXCLUSIVE MODE');
      const running = apply(pair.config, { direction: 'forward', probe: false });
      await until(pair.url('cloud'), waiting('RowShareLock'));
      // A read opened before the lock is granted has its snapshot by now (given a moment to arrive).
      await until(
        pair.url('desktop'),
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL AND state = 'idle in transaction'`,
        50,
      );
      // Meanwhile a reverse step runs to its end (it took the pair lock before forward's lock came):
      // it deletes job 2 on the desktop and records the delete in the desktop's copy of the base
      // (its commit), then in the cloud's copy (after its commit).
      await pair.sql(
        'desktop',
        `WITH d AS (DELETE FROM job WHERE job_id = 2 RETURNING 1),
              b AS (UPDATE bisync.base SET fingerprint = NULL, generation = generation + 1
                     WHERE table_name = 'job' AND key = '2' RETURNING 1)
         UPDATE bisync.state SET updated_at = clock_timestamp() WHERE table_name = 'job' AND direction = 'reverse'`,
      );
      await pair.sql('cloud', `UPDATE bisync.base SET fingerprint = NULL, generation = generation + 1 WHERE table_name = 'job' AND key = '2'`);
      await first.query('COMMIT');

      const report = await running;
      expect(report.steps[0]?.status).toBe('succeeded');
      // The phone's delete stands: forward must not re-create job 2 on the cloud.
      expect(await pair.job('cloud', 2)).toBeUndefined();
      expect(report.steps[0]?.inserted).toBe(0);
    } finally {
      for (const c of [first, other]) {
        await c.query('ROLLBACK').catch(() => undefined);
        await c.end();
      }
    }
  });
});
