/**
 * SPEC §7, the base after an upgrade: an earlier bisync kept the base's keys as JSON arrays (jsonb);
 * this one keeps them as text in the "C" collation. Bootstrap converts a base of the old format in
 * place, on each database, before any step uses it: fingerprints and generations are kept, so no edit
 * is lost, nothing is parked that was not, and nothing is re-recorded.
 */
import { afterEach, expect, it } from 'vitest';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases } from '../harness/fresh-databases.js';
import { ThreeWayPair } from './three-way-fixture.js';

let pair: ThreeWayPair | undefined;
afterEach(async () => {
  await pair?.drop();
  pair = undefined;
});

type Side = 'desktop' | 'cloud';
const SIDES: readonly Side[] = ['desktop', 'cloud'];

/** The base of `job` on one side as (key text, fingerprint, generation), whatever the key's type. */
async function baseOf(p: ThreeWayPair, side: Side): Promise<Record<string, unknown>[]> {
  return await p.sql(
    side,
    `SELECT CASE WHEN jsonb_typeof(to_jsonb(key)) = 'array' THEN to_jsonb(key) ->> 0 ELSE to_jsonb(key) #>> '{}' END AS key,
            fingerprint, generation::text AS generation
       FROM bisync.base WHERE table_name = 'job' ORDER BY 1`,
  );
}

/** The type and collation of base.key on one side. */
async function keyType(p: ThreeWayPair, side: Side): Promise<unknown> {
  return (
    await p.sql(
      side,
      `SELECT format_type(a.atttypid, a.atttypmod) AS type, co.collname AS collation
         FROM pg_attribute AS a LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
        WHERE a.attrelid = 'bisync.base'::regclass AND a.attname = 'key'`,
    )
  )[0];
}

/** Both sides' base as an earlier bisync kept it: every key the JSON array of its value's text. */
async function toOldFormat(p: ThreeWayPair): Promise<void> {
  for (const side of SIDES) {
    await p.sql(side, 'ALTER TABLE bisync.base ALTER COLUMN key TYPE jsonb USING jsonb_build_array(key)');
    expect(await keyType(p, side)).toEqual({ type: 'jsonb', collation: null });
  }
}

it('a base an earlier bisync kept with jsonb keys is converted in place by the next apply: edits made on either side are carried, nothing new is parked, and nothing is re-recorded', async () => {
  pair = await ThreeWayPair.create('tw_fmt_up', {});
  await pair.agreed([
    [1, 'job 1', 'Open'],
    [2, 'job 2', 'Open'],
    [3, 'job 3', 'Open'],
    [4, 'job 4', 'Open'],
    [5, 'job 5', 'Open'],
  ]);
  // Job 5: both sides edit it: parked, each side keeps its own.
  await pair.sql('desktop', `UPDATE job SET status = 'office 5' WHERE job_id = 5`);
  await pair.sql('cloud', `UPDATE job SET status = 'phone 5' WHERE job_id = 5`);
  const parkedRun = await pair.apply('both');
  expect((await pair.conflict('cloud', 5))?.kind).toBe('update-update');
  const before = { desktop: await baseOf(pair, 'desktop'), cloud: await baseOf(pair, 'cloud') };
  expect(before.desktop.map((b) => b.key)).toEqual(['1', '2', '3', '4', '5']);
  expect(before.cloud).toEqual(before.desktop);

  await toOldFormat(pair);
  // Since the last run: the office edits job 1 and deletes job 3, the phone edits job 2.
  await pair.sql('desktop', `UPDATE job SET title = 'office retitled' WHERE job_id = 1`);
  await pair.sql('desktop', 'DELETE FROM job WHERE job_id = 3');
  await pair.sql('cloud', `UPDATE job SET status = 'phone done' WHERE job_id = 2`);

  const upgraded = await pair.apply('both');
  expect(upgraded.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded']);
  for (const side of SIDES) {
    expect(await keyType(pair, side)).toEqual({ type: 'text', collation: 'C' });
    expect(await pair.jobs(side)).toEqual([
      { job_id: 1, title: 'office retitled', status: 'Open' },
      { job_id: 2, title: 'job 2', status: 'phone done' },
      { job_id: 4, title: 'job 4', status: 'Open' },
      { job_id: 5, title: 'job 5', status: side === 'desktop' ? 'office 5' : 'phone 5' },
    ]);
    // The parked key is still the only conflict, with both versions; job 4, untouched, keeps its base row as it was.
    expect((await pair.conflicts(side)).map((c) => [c.key, c.kind])).toEqual([[['5'], 'update-update']]);
    const after = await baseOf(pair, side);
    expect(after.find((b) => b.key === '4')).toEqual(before[side].find((b) => b.key === '4'));
    expect(after.find((b) => b.key === '5')).toEqual(before[side].find((b) => b.key === '5'));
    expect(after.find((b) => b.key === '3')?.fingerprint).toBeNull();
  }
  // Each step reports the parked key 5 as it did before the upgrade, and nothing else.
  expect(upgraded.steps.map((s) => s.conflicts)).toEqual(parkedRun.steps.map((s) => s.conflicts));

  // Converted once: a run with nothing changed writes no row and no base row on either side.
  const versions = async (side: Side): Promise<unknown> => await pair?.sql(side, 'SELECT key, ctid::text, xmin::text FROM bisync.base ORDER BY key');
  const settled = { desktop: await versions('desktop'), cloud: await versions('cloud') };
  const rerun = await pair.apply('both');
  expect(rerun.steps.map((s) => s.inserted + s.updated + s.deleted)).toEqual([0, 0]);
  expect(await versions('desktop')).toEqual(settled.desktop);
  expect(await versions('cloud')).toEqual(settled.cloud);

});

it('two applies starting at once on a base in the old format both convert it without failing, and the keys stay intact', async () => {
  pair = await ThreeWayPair.create('tw_fmt_race', {});
  await pair.agreed([
    [1, 'job 1', 'Open'],
    [2, 'job 2', 'Open'],
  ]);
  const before = { desktop: await baseOf(pair, 'desktop'), cloud: await baseOf(pair, 'cloud') };
  await toOldFormat(pair);
  await pair.sql('cloud', `UPDATE job SET status = 'phone done' WHERE job_id = 2`);

  // Both bootstraps find the old format; one converts it, the other waits on the bootstrap lock and finds it converted.
  const reports = await Promise.all([pair.apply('forward'), pair.apply('forward')]);
  for (const r of reports) for (const s of r.steps) expect(['succeeded', 'locked']).toContain(s.status);
  for (const side of SIDES) {
    expect(await keyType(pair, side)).toEqual({ type: 'text', collation: 'C' });
    expect(await baseOf(pair, side)).toEqual(before[side]);
  }
  // The phone's edit, made before the upgrade, still travels: carried by reverse, no conflict.
  const reverse = await pair.apply('reverse');
  expect(reverse.steps[0]).toMatchObject({ status: 'succeeded', updated: 1, conflicts: 0 });
  expect(await pair.job('desktop', 2)).toEqual({ job_id: 2, title: 'job 2', status: 'phone done' });
});

it('a composite key of an old-format base becomes the text of its JSON array, and edits made on either side after the upgrade are carried, nothing parked', async () => {
  const dbs = await createDatabases('tw_fmt_multi');
  try {
    await query(dbs.desktopUrl, 'CREATE TABLE visit (site text, visit_no integer, note text, PRIMARY KEY (site, visit_no))');
    await query(dbs.cloudUrl, 'CREATE TABLE visit (site text, visit_no integer, note text, source char(1), PRIMARY KEY (site, visit_no))');
    const config = await testConfig(
      writeConfig(`
${configHead()}tables:
  - name: visit
    primary_key: [site, visit_no]
    direction: both
    origin: { column: source, forward: D, reverse: M }
    edits: both
    deletes: mirror
    max_delete_fraction: 1
`),
      dbs,
    );
    await query(dbs.desktopUrl, `INSERT INTO visit VALUES ('north', 1, 'a'), ('north', 2, 'b'), ('south "x"', 1, 'c')`);
    await apply(config, { direction: 'both' });
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      expect(await query(url, 'SELECT key FROM bisync.base ORDER BY key')).toEqual([
        { key: '["north", "1"]' },
        { key: '["north", "2"]' },
        { key: '["south \\"x\\"", "1"]' },
      ]);
      // What an earlier bisync kept: the same keys as JSON arrays.
      await query(url, 'ALTER TABLE bisync.base ALTER COLUMN key TYPE jsonb USING key::jsonb');
    }
    await query(dbs.desktopUrl, `UPDATE visit SET note = 'office' WHERE site = 'north' AND visit_no = 1`);
    await query(dbs.cloudUrl, `UPDATE visit SET note = 'phone' WHERE site = 'south "x"'`);
    await query(dbs.cloudUrl, `DELETE FROM visit WHERE site = 'north' AND visit_no = 2`);
    const report = await apply(config, { direction: 'both' });
    expect(report.steps.map((s) => [s.status, s.conflicts])).toEqual([
      ['succeeded', 0],
      ['succeeded', 0],
    ]);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      expect(await query(url, 'SELECT site, visit_no, note FROM visit ORDER BY site, visit_no')).toEqual([
        { site: 'north', visit_no: 1, note: 'office' },
        { site: 'south "x"', visit_no: 1, note: 'phone' },
      ]);
      expect(await query(url, 'SELECT key, fingerprint IS NULL AS deleted FROM bisync.base ORDER BY key')).toEqual([
        { key: '["north", "1"]', deleted: false },
        { key: '["north", "2"]', deleted: true },
        { key: '["south \\"x\\"", "1"]', deleted: false },
      ]);
    }
  } finally {
    await dbs.drop();
  }
});
