import { describe, expect, it } from 'vitest';
import { planSummary } from '../../src/cli/plan-output.js';
import { compilePlan } from '../../src/compiler/compile-plan.js';
import { configFrom, smallCatalogs, smallDocument } from '../compiler/helpers.js';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { setDatabaseDefaults, useFreshDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

/**
 * SPEC §8, checksum-first full compare: a step that reads the desktop in full first compares
 * bucket checksums computed on each server and reads only the rows of buckets that differ; what
 * it writes is what the full read writes.
 */

type Row = Record<string, unknown>;
const cloudJobs = async (url: string): Promise<Row[]> => await query(url, 'SELECT job_id, client_id, title, status, source FROM job ORDER BY job_id');

describe('checksum-first: a step reading the desktop in full compares bucket checksums and reads only differing buckets', () => {
  const dbs = useFreshDatabases('checksum');

  it('checksum-first: the first run reads in full, a no-change run reads nothing, and plan says checksum-first', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 5, 2000);
    const config = await jobsConfig(dbs);
    const first = (await apply(config, { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(first).toMatchObject({ read: 2000, inserted: 2000 });
    expect(first?.reason).toMatch(/first run of this step: no checksum compare/);
    expect(first?.checksum).toBeUndefined();

    // The step itself, not the run-level probe (which would skip it: probe.test.ts).
    const again = (await apply(config, { direction: 'forward', probe: false })).steps.find((s) => s.table === 'job');
    expect(again).toMatchObject({ status: 'succeeded', mode: 'full', read: 0, inserted: 0, updated: 0, unchanged: 2000 });
    expect(again?.reason).toMatch(/checksum-first/);
    expect(again?.checksum?.differing).toBe(0);
    expect(again?.checksum?.buckets).toBeGreaterThan(500);
  });

  it('checksum-first: an edit reads only the rows of its bucket and writes exactly that row', async () => {
    await query(dbs.desktopUrl, `UPDATE job SET status = 'closed' WHERE job_id = 1234`);
    const step = (await apply(await jobsConfig(dbs), { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(step).toMatchObject({ status: 'succeeded', updated: 1, inserted: 0, unchanged: 1999 });
    expect(step?.checksum?.differing).toBe(1);
    expect(step?.read).toBeGreaterThanOrEqual(1);
    expect(step?.read).toBeLessThan(20);
    expect((await query(dbs.cloudUrl, 'SELECT status, source FROM job WHERE job_id = 1234'))[0]).toEqual({ status: 'closed', source: 'D' });
  });

  it('checksum-first: a row the other side owns is protected, read when its bucket differs, counted unread when it equals the desktop row', async () => {
    // The phone took over job 77 (same content as the desktop's: its bucket is equal, the row is
    // counted protected unread) and job 78 (edited: its bucket differs and is read, the merge protects
    // it), and created job 90001 (a key the desktop does not have): forward writes none of them.
    await query(dbs.cloudUrl, `UPDATE job SET source = 'M' WHERE job_id = 77`);
    await query(dbs.cloudUrl, `UPDATE job SET source = 'M', title = 'phone title' WHERE job_id = 78`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (90001, 1, 'phone job', 'open', 'M')`);
    const step = (await apply(await jobsConfig(dbs), { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(step).toMatchObject({ status: 'succeeded', protected: 2, updated: 0, inserted: 0, deleted: 0, unchanged: 1998 });
    expect(step?.checksum?.differing).toBe(2);
    expect(step?.read).toBeLessThan(20);
    expect(await query(dbs.cloudUrl, 'SELECT title, source FROM job WHERE job_id IN (77, 78, 90001) ORDER BY job_id')).toEqual([
      { title: 'job 77', source: 'M' },
      { title: 'phone title', source: 'M' },
      { title: 'phone job', source: 'M' },
    ]);
    // Reported again next run, as a full read does.
    const next = (await apply(await jobsConfig(dbs), { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(next).toMatchObject({ status: 'succeeded', protected: 2, updated: 0, unchanged: 1998 });
  });

  it('checksum-first: an unmarked cloud row makes its bucket differ: stamped when the desktop has its key, reported when not', async () => {
    await query(dbs.cloudUrl, `UPDATE job SET source = NULL WHERE job_id = 500`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (90002, 1, 'nobody', 'open', NULL)`);
    const step = (await apply(await jobsConfig(dbs), { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(step).toMatchObject({ status: 'succeeded', updated: 1, unmarked: 1 });
    expect((await query(dbs.cloudUrl, 'SELECT source FROM job WHERE job_id = 500'))[0]).toEqual({ source: 'D' });
  });
});

describe('checksum-first: mirror deletes act only inside buckets that were compared and read', () => {
  const dbs = useFreshDatabases('checksumdel');

  it('mirror deletes never touch a key whose bucket was not compared and read', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 3000);
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror\n    max_delete_fraction: 1' });
    await apply(config, { direction: 'forward' });
    await query(dbs.desktopUrl, 'DELETE FROM job WHERE job_id IN (10, 2500)');

    // Staging holds only the rows of the two differing buckets; every other key is missing from
    // it because its bucket was equal, and must not be taken for a delete.
    const step = (await apply(config, { direction: 'forward', allowDeletes: true })).steps.find((s) => s.table === 'job');
    expect(step?.reason).toMatch(/checksum-first/);
    expect(step).toMatchObject({ status: 'succeeded', deleted: 2, unchanged: 2998 });
    expect(step?.read).toBeLessThan(30);
    const left = await query<{ n: number; gone: number }>(dbs.cloudUrl, 'SELECT count(*)::int AS n, count(*) FILTER (WHERE job_id IN (10, 2500))::int AS gone FROM job');
    expect(left[0]).toEqual({ n: 2998, gone: 0 });
  });

  it('checksum-first: compare: full reads every row, as before, with the same result', async () => {
    await query(dbs.desktopUrl, `UPDATE job SET title = 'renamed' WHERE job_id = 11`);
    await query(dbs.desktopUrl, 'DELETE FROM job WHERE job_id = 12');
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror\n    max_delete_fraction: 1\n    compare: full' });
    const step = (await apply(config, { direction: 'forward' })).steps.find((s) => s.table === 'job');
    expect(step?.reason).not.toMatch(/checksum/);
    expect(step?.checksum).toBeUndefined();
    expect(step).toMatchObject({ status: 'succeeded', read: 2997, updated: 1, deleted: 1, unchanged: 2996 });
  });
});

/** A table whose columns differ in type between the two databases, for the checksum's conversions. */
async function createTypedTables(dbs: TestDatabases): Promise<void> {
  await query(
    dbs.desktopUrl,
    `CREATE TABLE typed (id integer PRIMARY KEY, amount numeric, price numeric(10,3), label varchar(20), due timestamp, seen timestamptz, noted timestamptz)`,
  );
  await query(
    dbs.cloudUrl,
    `CREATE TABLE typed (id bigint PRIMARY KEY, amount numeric, price numeric(10,2), label text, due timestamptz, seen timestamp, noted timestamptz,
                         source text)`,
  );
}

const typedYaml = `
${configHead()}tables:
  - name: typed
    primary_key: [id]
    direction: forward
    origin: { column: source, forward: D, reverse: M }
`;

describe('checksum-first: type differences between the sides make a bucket differ, never equal by accident', () => {
  const dbs = useFreshDatabases('checksumtypes');

  it('checksum-first: values that only look alike across types (scale, zones, timestamp vs timestamptz) are read and written as a full read writes them', async () => {
    // Each server's sessions run in its own zone (SPEC §8): the cloud's is not the desktop's.
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'Asia/Kolkata' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'Europe/Paris' });
    await createTypedTables(dbs);
    await query(
      dbs.desktopUrl,
      `INSERT INTO typed SELECT i, 1.0, 2.125, 'label ' || i, timestamp '2024-01-01 10:00:00', timestamptz '2024-06-01 12:00:00+00', timestamptz '2024-03-01 08:00:00+00'
         FROM generate_series(1, 400) i`,
    );
    const config = await testConfig(writeConfig(typedYaml), dbs);
    expect((await apply(config)).steps[0]).toMatchObject({ status: 'succeeded', inserted: 400 });
    const synced = await query(dbs.cloudUrl, 'SELECT * FROM typed ORDER BY id');

    // A no-change run: every bucket equal although the text of most columns differs between the
    // sessions (timestamptz shown in Kolkata and Paris time, numeric(10,3) against numeric(10,2)).
    expect((await apply(config)).steps[0]).toMatchObject({ status: 'succeeded', read: 0, unchanged: 400, updated: 0 });

    // Now cloud values that a careless text compare would take for the desktop's:
    //  1: amount 1.00 where the desktop has 1.0 (equal numbers, different text: the bucket differs, nothing is written);
    //  2: due 10:00 UTC, the desktop's 10:00 read in UTC instead of in the cloud's zone (09:00 UTC);
    //  3: seen 12:00 as Paris local time (the desktop's instant in UTC text, not in the cloud's zone);
    //  4: noted shifted by the zone difference between the servers.
    await query(dbs.cloudUrl, `UPDATE typed SET amount = 1.00 WHERE id = 1`);
    await query(dbs.cloudUrl, `UPDATE typed SET due = timestamptz '2024-01-01 10:00:00+00' WHERE id = 2`);
    await query(dbs.cloudUrl, `UPDATE typed SET seen = timestamp '2024-06-01 12:00:00' WHERE id = 3`);
    await query(dbs.cloudUrl, `UPDATE typed SET noted = timestamptz '2024-03-01 08:00:00+05:30' WHERE id = 4`);
    const step = (await apply(config)).steps[0];
    expect(step?.checksum?.differing).toBe(4);
    expect(step).toMatchObject({ status: 'succeeded', updated: 3, unchanged: 397 });
    expect(await query(dbs.cloudUrl, 'SELECT * FROM typed WHERE id <> 1 ORDER BY id')).toEqual(synced.filter((r) => r.id !== '1'));
    expect((await apply(config)).steps[0]).toMatchObject({ status: 'succeeded', updated: 0, unchanged: 400 });
  });

  it('checksum-first: a type difference the desktop cannot reproduce reads in full and says why', async () => {
    await query(dbs.desktopUrl, `ALTER TABLE typed ADD COLUMN day date`);
    await query(dbs.cloudUrl, `ALTER TABLE typed ADD COLUMN day timestamp`);
    const config = await testConfig(writeConfig(typedYaml), dbs);
    const step = (await apply(config)).steps[0];
    expect(step?.reason).toMatch(/no checksum compare: column day is date on one side and timestamp without time zone on the other/);
    expect(step).toMatchObject({ status: 'succeeded', read: 400 });
  });
});

describe('checksum-first in the plan', () => {
  it('plan shows both checksum statements, the bucket filter of the copy and of the deletes, and says checksum-first', () => {
    const plan = compilePlan(configFrom(smallDocument()), smallCatalogs(), { 'orgs/forward': null }, { direction: 'forward', mode: 'auto' });
    const orgs = plan.steps.find((s) => s.table === 'orgs');
    expect(orgs?.compare).toBe('checksum');
    expect(orgs?.reason).toMatch(/checksum-first/);
    const kinds = orgs?.statements.map((s) => `${s.kind}/${s.side}`) ?? [];
    expect(kinds).toEqual(expect.arrayContaining(['bucket-checksums/target', 'bucket-checksums/source', 'set-buckets/source', 'set-buckets/target']));
    expect(kinds.indexOf('bucket-checksums/source')).toBeLessThan(kinds.indexOf('copy-out/source'));
    expect(orgs?.statements.find((s) => s.kind === 'copy-out')?.sql).toMatch(/current_setting\('bisync\.buckets'\)/);
    expect(planSummary(plan)).toMatch(/checksum-first/);
    // --mode full and the first run read every row without a checksum compare.
    expect(compilePlan(configFrom(smallDocument()), smallCatalogs(), { 'orgs/forward': null }, { direction: 'forward', mode: 'full' }).steps[0]?.compare).toBeUndefined();
    expect(compilePlan(configFrom(smallDocument()), smallCatalogs(), {}, { direction: 'forward', mode: 'auto' }).steps[0]?.compare).toBeUndefined();
  });
});
