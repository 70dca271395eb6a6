/**
 * SPEC §7, the base of an edits: both table: each database keeps its own copy, and both copies come
 * to hold the version the two sides agreed on (what checksum-first needs to call a key settled on
 * each database alone). A step records its target's copy whenever that copy does not hold the agreed
 * version yet, whatever the other copy says; once both copies agree, a no-change run writes no base row.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SOURCE_BASE_CAP } from '../../src/compiler/compile-plan.js';
import { apply } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

const pairs: ThreeWayPair[] = [];
const make = async (label: string, options: Parameters<typeof ThreeWayPair.create>[1] = {}): Promise<ThreeWayPair> => {
  const pair = await ThreeWayPair.create(label, options);
  pairs.push(pair);
  return pair;
};
afterAll(async () => {
  for (const pair of pairs) await pair.drop();
});

type Side = 'desktop' | 'cloud';
type BaseRow = { key: unknown; fingerprint: string | null; generation: string; agreed_at: string };

/** One side's copy of the base of `job`, by key. */
async function copyOf(pair: ThreeWayPair, side: Side): Promise<BaseRow[]> {
  return (await pair.sql(side, "SELECT key, fingerprint, generation::text, agreed_at::text FROM bisync.base WHERE table_name = 'job' ORDER BY key")) as BaseRow[];
}

/** Each copy holds the same fingerprint for every key (generations may differ), and `keys` keys. */
async function expectCopiesAgree(pair: ThreeWayPair, keys: number): Promise<void> {
  const fingerprints = async (side: Side): Promise<unknown[]> => (await copyOf(pair, side)).map((b) => [b.key, b.fingerprint]);
  const desktop = await fingerprints('desktop');
  expect(desktop).toHaveLength(keys);
  expect(await fingerprints('cloud')).toEqual(desktop);
}

/** The rows of the copy in place: its physical version (ctid) and writing transaction (xmin) too. */
async function physical(pair: ThreeWayPair, side: Side): Promise<unknown[]> {
  return await pair.sql(side, "SELECT key, fingerprint, generation, ctid::text AS ctid, xmin::text AS xmin FROM bisync.base WHERE table_name = 'job' ORDER BY key");
}

/** Put one side's copy back as it was (what a crash before that copy was written leaves). */
async function restore(pair: ThreeWayPair, side: Side, rows: readonly BaseRow[]): Promise<void> {
  await pair.sql(side, "DELETE FROM bisync.base WHERE table_name = 'job'");
  for (const r of rows) {
    await pair.sql(side, "INSERT INTO bisync.base (table_name, key, fingerprint, generation, agreed_at) VALUES ('job', $1, $2, $3, $4)", [
      r.key,
      r.fingerprint,
      r.generation,
      r.agreed_at,
    ]);
  }
}

describe('both copies of the base converge on the agreed version', () => {
  for (const mode of ['auto', 'full'] as const) {
    it(`after a forward edit and a no-change reverse both copies of the base hold the agreed version (${mode})`, async () => {
      const pair = await make(`tw_copies_edit_${mode}`, { cursors: mode === 'auto' });
      await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
      await pair.sql('desktop', "UPDATE job SET status = 'Done' WHERE job_id = 1");
      await pair.apply('forward', { mode });
      const reverse = await pair.apply('reverse', { mode });
      expect(reverse.steps[0]).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
      await expectCopiesAgree(pair, 2);
      expect(await pair.job('desktop', 1)).toMatchObject({ status: 'Done' });
    });
  }

  it('after a carried delete and a no-change reverse both copies of the base record the delete', async () => {
    const pair = await make('tw_copies_delete');
    await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
    await pair.sql('desktop', 'DELETE FROM job WHERE job_id = 1');
    await pair.apply('forward', { mode: 'full' });
    await pair.apply('reverse', { mode: 'full' });
    await expectCopiesAgree(pair, 2);
    expect((await copyOf(pair, 'desktop')).find((b) => b.key === '1')?.fingerprint).toBeNull();
    expect(await pair.jobs('cloud')).toHaveLength(1);
  });

  it('after a first sync and a no-change reverse both copies of the base hold every key', async () => {
    const pair = await make('tw_copies_first');
    await pair.sql('desktop', "INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 5) AS i");
    await pair.apply('forward', { mode: 'full' });
    await pair.apply('reverse', { mode: 'full' });
    await expectCopiesAgree(pair, 5);
  });

  it('a no-change rerun after convergence writes no base row on either side (same ctid and xmin)', async () => {
    const pair = await make('tw_copies_rerun');
    await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open'], [3, 'three', null]]);
    await pair.sql('desktop', "UPDATE job SET status = 'Done' WHERE job_id = 1");
    await pair.sql('cloud', "UPDATE job SET title = 'two (phone)' WHERE job_id = 2");
    await pair.sql('desktop', 'DELETE FROM job WHERE job_id = 3');
    await pair.apply('both', { mode: 'full' });
    await pair.apply('both', { mode: 'full' });
    await expectCopiesAgree(pair, 3);
    const before = [await physical(pair, 'desktop'), await physical(pair, 'cloud')];

    for (const direction of ['forward', 'reverse', 'both'] as const) {
      const rerun = await pair.apply(direction, { mode: 'full' });
      for (const step of rerun.steps) expect(step).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    }

    expect([await physical(pair, 'desktop'), await physical(pair, 'cloud')]).toEqual(before);
  });
});

describe('a copy of the base left stale is brought to the agreed version by the next step into its database', () => {
  // A copy is stale when a crash came between the commit on one database and the write of the
  // other database's copy (or the base predates this rule). The next step into that database sees
  // both rows equal and its own copy saying something else: it records the agreed version there.
  for (const [what, change] of [
    ['an edited row', "UPDATE job SET status = 'Done' WHERE job_id = 1"],
    ['a deleted row', 'DELETE FROM job WHERE job_id = 1'],
  ] as const) {
    it(`a stale copy of ${what}`, async () => {
      const pair = await make(`tw_stale_${what.split(' ')[1]}`);
      await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
      const desktopBefore = await copyOf(pair, 'desktop');
      await pair.sql('desktop', change);
      await pair.apply('forward', { mode: 'full' });
      await restore(pair, 'desktop', desktopBefore);
      await pair.apply('reverse', { mode: 'full' });
      await expectCopiesAgree(pair, 2);
    });
  }

  it('a copy missing after a first sync', async () => {
    const pair = await make('tw_stale_first');
    await pair.sql('desktop', "INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 5) AS i");
    await pair.apply('forward', { mode: 'full' });
    await restore(pair, 'desktop', []);
    await pair.apply('reverse', { mode: 'full' });
    await expectCopiesAgree(pair, 5);
  });
});

describe("the source's copy of the base is written once the target has committed", () => {
  // Each step writes its target's copy with its data, then, after that commit, the same versions
  // into its source's copy: both copies agree without waiting for the other direction's step.
  for (const [direction, source] of [['forward', 'desktop'], ['reverse', 'cloud']] as const) {
    it(`after a ${direction} step that carried an edit, a delete and a new row, ${source}'s copy holds what the target's holds`, async () => {
      const pair = await make(`tw_copy_back_${direction}`);
      await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open'], [3, 'three', 'Open']]);
      await pair.sql(source, "UPDATE job SET status = 'Done' WHERE job_id = 1");
      await pair.sql(source, 'DELETE FROM job WHERE job_id = 2');
      await pair.sql(source, "INSERT INTO job (job_id, title, status) VALUES (4, 'four', 'Open')");
      const report = await pair.apply(direction, { mode: 'full' });
      expect(report.steps[0]).toMatchObject({ inserted: 1, updated: 1, deleted: 1 });
      await expectCopiesAgree(pair, 4);
      // The same generation on both copies: the source's was written from the target's.
      const versions = async (side: Side): Promise<unknown[]> => (await copyOf(pair, side)).map((b) => [b.key, b.fingerprint, b.generation]);
      expect(await versions(source)).toEqual(await versions(source === 'desktop' ? 'cloud' : 'desktop'));
    });
  }

  it("a first forward sync leaves the desktop's copy holding every key it copied", async () => {
    const pair = await make('tw_copy_back_first');
    await pair.sql('desktop', "INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 5) AS i");
    await pair.apply('forward', { mode: 'full' });
    await expectCopiesAgree(pair, 5);
  });

  it("a step that records more versions than it holds in memory leaves the source's copy to the next step into the source", async () => {
    const pair = await make('tw_copy_back_cap');
    const rows = SOURCE_BASE_CAP + 1;
    await pair.sql('desktop', `INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, ${rows}) AS i`);
    await pair.apply('forward', { mode: 'full' });
    expect(await copyOf(pair, 'desktop')).toEqual([]);
    expect(await copyOf(pair, 'cloud')).toHaveLength(rows);
    await pair.apply('reverse', { mode: 'full' });
    await expectCopiesAgree(pair, rows);
  });

  it("a step sends back only the versions the source's copy lacks: after a first sync past the cap, the first reverse still records the phone's new row in the cloud's copy", async () => {
    // The first reverse records every key in the desktop's copy (empty since the capped forward), but
    // the cloud's copy already holds all of them but the phone's row: that one alone goes back, under
    // the cap, so the copies agree at once and the next forward's checksums find nothing to read.
    const pair = await make('tw_copy_back_lacks');
    const rows = SOURCE_BASE_CAP + 1;
    await pair.sql('desktop', `INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, ${rows}) AS i`);
    await pair.apply('forward', { mode: 'full' });
    await pair.sql('cloud', "INSERT INTO job (job_id, title, status, source) VALUES (0, 'phone job', 'Open', 'M')");
    const reverse = await pair.apply('reverse', { mode: 'full' });
    expect(reverse.steps[0]).toMatchObject({ inserted: 1, updated: 0, deleted: 0 });
    await expectCopiesAgree(pair, rows + 1);
    const cloudCopy = await copyOf(pair, 'cloud');
    // The keys the cloud's copy held already keep their version there (written by the forward step).
    expect(cloudCopy.find((b) => b.key === '1')?.generation).toBe('1');
    expect(cloudCopy.find((b) => b.key === '0')?.generation).toBe('1');
    const forward = await pair.apply('forward');
    expect(forward.steps[0]).toMatchObject({ read: 0, inserted: 0, updated: 0, deleted: 0 });
  });

  it("a step its target rolls back leaves the source's copy of the base as it was", async () => {
    // Written before the target commits, the source's copy would say the edit reached the cloud;
    // after the rollback the next forward would take the cloud's old row for a phone edit.
    const pair = await make('tw_copy_back_refused', { maxDeleteFraction: 0.25 });
    await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open'], [3, 'three', 'Open'], [4, 'four', 'Open']]);
    const desktopBefore = await copyOf(pair, 'desktop');
    await pair.sql('desktop', "UPDATE job SET status = 'Done' WHERE job_id = 1");
    await pair.sql('desktop', 'DELETE FROM job WHERE job_id IN (2, 3)');
    const report = await pair.apply('forward', { mode: 'full' });
    expect(report.steps[0]?.status).toBe('refused');
    expect(await copyOf(pair, 'desktop')).toEqual(desktopBefore);
    expect(await pair.job('cloud', 1)).toMatchObject({ status: 'Open' });
  });

  it("a dry run writes nothing to the source's copy of the base", async () => {
    const pair = await make('tw_copy_back_dry');
    await pair.agreed([[1, 'one', 'Open']]);
    await pair.sql('desktop', "UPDATE job SET status = 'Done' WHERE job_id = 1");
    const before = [await physical(pair, 'desktop'), await physical(pair, 'cloud')];
    await apply(pair.config, { direction: 'forward', mode: 'full', dryRun: true });
    expect([await physical(pair, 'desktop'), await physical(pair, 'cloud')]).toEqual(before);
  });
});

describe('a key of the base recorded by another run while a step merges', () => {
  // A step writes its source's copy after its commit, under no lock: another run's step into that
  // database may be merging then, and find the key missing from its copy and insert it too.
  it('is a concurrent update: the step is rolled back and run again, and no row is rejected', async () => {
    const pair = await make('tw_copy_back_race');
    // One row: a merge of several that fails this way is bisected first, and its halves, run after
    // the other write committed, see the key (run-step.ts); a single row's merge is the step's retry.
    await pair.sql('desktop', "INSERT INTO job (job_id, title, status) VALUES (2, 'job 2', 'Open')");
    await pair.apply('forward', { mode: 'full' });
    const cloudCopy = await copyOf(pair, 'cloud');
    await restore(pair, 'desktop', []);
    // The other run's write of the desktop's copy, not committed yet when reverse merges.
    const other = new pg.Client({ connectionString: pair.dbs.desktopUrl });
    await other.connect();
    try {
      await other.query('BEGIN');
      const two = cloudCopy.find((b) => b.key === '2');
      await other.query("INSERT INTO bisync.base (table_name, key, fingerprint, generation) VALUES ('job', $1, $2, $3)", [two?.key, two?.fingerprint, two?.generation]);
      const reverse = apply(pair.config, { direction: 'reverse', mode: 'full' });
      let waiting = false;
      for (let i = 0; i < 4000 && !waiting; i++) {
        const sessions = await pair.sql('desktop', "SELECT 1 FROM pg_stat_activity WHERE application_name = 'bisync' AND wait_event_type = 'Lock' AND query LIKE 'WITH src AS (%'");
        waiting = sessions.length > 0;
      }
      expect(waiting, 'the merge waited on the other write').toBe(true);
      await other.query('COMMIT');
      const step = (await reverse).steps[0];
      expect(step).toMatchObject({ status: 'succeeded', retries: 1, rejected: 0 });
    } finally {
      await other.end();
    }
    expect(await pair.sql('desktop', 'SELECT key FROM bisync.rejects')).toEqual([]);
    await expectCopiesAgree(pair, 1);
  });
});
