/**
 * checksum-first on an edits: both table (SPEC §8): a forward step opens its read of the desktop
 * only once its lock on the cloud is held, but it does not wait for the cloud's bucket checksums
 * before doing so: both databases sum their buckets at the same time (on one machine the step took
 * the two sums one after the other, about twice as long).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { apply, query } from '../harness/bisync.js';
import { connected, until } from '../harness/lock-waits.js';
import { ThreeWayPair } from './three-way-fixture.js';

let pair: ThreeWayPair | undefined;
afterAll(async () => await pair?.drop());

/** The desktop session of the step, in its read transaction, its last statement the bucket checksums. */
const desktopSummed = `SELECT 1 FROM pg_stat_activity
  WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'
    AND query LIKE 'WITH r AS MATERIALIZED (%' AND query LIKE '%GROUP BY 1%'`;

describe('edits: both forward with checksum-first', () => {
  it("opens its read of the desktop and sums the desktop's buckets while the cloud's bucket checksums still run", async () => {
    pair = await ThreeWayPair.create('tw_sums_together');
    await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
    await pair.apply('forward');

    // The cloud's checksums read its conflicts table: a session holding it makes them wait.
    const holder = await connected(pair.url('cloud'));
    let running: ReturnType<typeof apply> | undefined;
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE bisync.conflicts IN ACCESS EXCLUSIVE MODE');
      // The step itself (no probe before it, whose own checksums would wait on the same lock).
      running = apply(pair.config, { direction: 'forward', probe: false });
      running.catch(() => undefined);
      await until(pair.url('cloud'), "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'bisync.conflicts'::regclass");
      await until(pair.url('desktop'), desktopSummed, 250);
      expect(await query(pair.url('desktop'), desktopSummed)).toHaveLength(1);
      // The cloud's checksums are still waiting: they had not ended before the desktop summed.
      expect(await query(pair.url('cloud'), "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'bisync.conflicts'::regclass")).toHaveLength(1);
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    const report = await running;
    expect(report?.steps[0]).toMatchObject({ status: 'succeeded', read: 0, inserted: 0, updated: 0, deleted: 0, checksum: { differing: 0 } });
  });
});
