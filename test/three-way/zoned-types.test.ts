/**
 * edits: both between servers in different time zones: the fingerprint of a value whose text depends
 * on the session's TimeZone (a timestamptz range, an array of timestamptz) must not depend on it, or the
 * base one direction records matches neither side in the other and every edit is parked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, setDatabaseDefaults, withClient } from '../harness/fresh-databases.js';
import { jobBothWaysYaml } from './three-way-fixture.js';

let dbs: Awaited<ReturnType<typeof createDatabases>>;
beforeAll(async () => {
  dbs = await createDatabases('tw_zoned');
});
afterAll(async () => await dbs.drop());

// Each row's values as instants (epoch seconds), whatever the reading session's zone.
const rows = async (url: string): Promise<Record<string, unknown>[]> =>
  await query(
    url,
    `SELECT id, title, extract(epoch FROM lower(slot))::text AS lo, extract(epoch FROM upper(slot))::text AS hi, lower_inc(slot) AS lo_inc, isempty(slot) AS empty,
            (SELECT array_agg(extract(epoch FROM e)::text ORDER BY o) FROM unnest(stamps) WITH ORDINALITY AS u(e, o)) AS stamps
       FROM job ORDER BY id`,
  );

describe('edits: both across time zones', () => {
  it('a row with a timestamptz range or array is carried both ways when edited on one side, not parked, whatever each server zone', async () => {
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'Asia/Kolkata' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York' });
    await withClient(dbs.desktopUrl, async (c) => await c.query(`CREATE TABLE job (id integer PRIMARY KEY, slot tstzrange, stamps timestamptz[], title text NOT NULL)`));
    await withClient(dbs.cloudUrl, async (c) => await c.query(`CREATE TABLE job (id integer PRIMARY KEY, slot tstzrange, stamps timestamptz[], title text NOT NULL, source char(1))`));
    const config = await testConfig(
      writeConfig(jobBothWaysYaml({ primaryKey: 'id', maxDeleteFraction: 1 })),
      dbs,
    );
    await query(
      dbs.desktopUrl,
      `INSERT INTO job VALUES (1, '[2024-01-01 10:00+00, 2024-01-01 11:00+00)', '{2024-01-01 10:00+00, NULL}', 'one'),
                              (2, '(2024-03-01 23:30+00,)', '{{2024-01-01 00:00+00},{2024-06-01 00:00+00}}', 'two'),
                              (3, 'empty', '{}', 'three')`,
    );
    expect((await apply(config)).exitCode).toBe(0);

    await query(dbs.desktopUrl, `UPDATE job SET title = 'one, office' WHERE id = 1`);
    await query(dbs.cloudUrl, `UPDATE job SET title = 'two, phone' WHERE id = 2`);
    const report = await apply(config);
    expect(report.steps.map((s) => [s.direction, s.status, s.updated, s.conflicts])).toEqual([
      ['forward', 'succeeded', 1, 0],
      ['reverse', 'succeeded', 1, 0],
    ]);
    expect(await rows(dbs.cloudUrl)).toEqual(await rows(dbs.desktopUrl));
    expect((await rows(dbs.cloudUrl)).map((r) => r.title)).toEqual(['one, office', 'two, phone', 'three']);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) expect(await query(url, 'SELECT key FROM bisync.conflicts')).toEqual([]);
  });
});
