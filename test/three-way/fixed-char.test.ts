/**
 * edits: both over character(n) columns: T stores a value padded to n characters. The merge's
 * fingerprint of F's staged row must be T's fingerprint of the row it writes, or every edit after the
 * first sync meets a base that matches neither side and is parked as a conflict.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, query, testConfig, writeConfig } from '../harness/bisync.js';
import { createDatabases, withClient } from '../harness/fresh-databases.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { jobBothWaysYaml } from './three-way-fixture.js';

let dbs: Awaited<ReturnType<typeof createDatabases>>;
let config: ResolvedConfig;
beforeAll(async () => {
  dbs = await createDatabases('tw_fixedchar');
  await withClient(dbs.desktopUrl, async (c) => await c.query(`CREATE TABLE job (code character(4) PRIMARY KEY, label character(6), title text NOT NULL)`));
  await withClient(dbs.cloudUrl, async (c) => await c.query(`CREATE TABLE job (code character(4) PRIMARY KEY, label character(6), title text NOT NULL, source char(1))`));
  config = await testConfig(
    writeConfig(jobBothWaysYaml({ primaryKey: 'code', maxDeleteFraction: 1 })),
    dbs,
  );
});
afterAll(async () => await dbs.drop());

const rows = async (url: string): Promise<Record<string, unknown>[]> => await query(url, 'SELECT code, label, title FROM job ORDER BY code');

describe('edits: both: character(n) columns', () => {
  it('a character(n) value shorter than n (key or not) is carried both ways when edited on one side, not parked as a conflict', async () => {
    await query(dbs.desktopUrl, `INSERT INTO job VALUES ('ab', 'xy', 'one'), ('abcd', 'uvwxyz', 'two'), ('q', NULL, 'three')`);
    expect((await apply(config)).exitCode).toBe(0);

    await query(dbs.desktopUrl, `UPDATE job SET title = 'one, office' WHERE code = 'ab'`);
    await query(dbs.cloudUrl, `UPDATE job SET label = 'z' WHERE code = 'q'`);
    const report = await apply(config);
    expect(report.steps.map((s) => [s.direction, s.status, s.updated, s.conflicts])).toEqual([
      ['forward', 'succeeded', 1, 0],
      ['reverse', 'succeeded', 1, 0],
    ]);
    expect(await rows(dbs.cloudUrl)).toEqual(await rows(dbs.desktopUrl));
    expect(await rows(dbs.cloudUrl)).toEqual([
      { code: 'ab  ', label: 'xy    ', title: 'one, office' },
      { code: 'abcd', label: 'uvwxyz', title: 'two' },
      { code: 'q   ', label: 'z     ', title: 'three' },
    ]);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) expect(await query(url, 'SELECT key FROM bisync.conflicts')).toEqual([]);
  });
});

describe('edits: both: character(n) on one side, text on the other', () => {
  it('a character(n) column synced with a text column carries edits made on either side, not parked as a conflict', async () => {
    const mixed = await createDatabases('tw_fixedchar_mixed');
    try {
      await withClient(mixed.desktopUrl, async (c) => await c.query(`CREATE TABLE job (id integer PRIMARY KEY, label character(6), title text NOT NULL)`));
      await withClient(mixed.cloudUrl, async (c) => await c.query(`CREATE TABLE job (id integer PRIMARY KEY, label text, title text NOT NULL, source char(1))`));
      const mixedConfig = await testConfig(
        writeConfig(jobBothWaysYaml({ primaryKey: 'id', maxDeleteFraction: 1 })),
        mixed,
      );
      await query(mixed.desktopUrl, `INSERT INTO job VALUES (1, 'xy', 'one')`);
      expect((await apply(mixedConfig)).exitCode).toBe(0);
      const edits = [
        ['cloud', `UPDATE job SET label = 'xz' WHERE id = 1`],
        ['desktop', `UPDATE job SET title = 'one, office' WHERE id = 1`],
        ['cloud', `UPDATE job SET title = 'one, phone' WHERE id = 1`],
      ] as const;
      for (const [side, sql] of edits) {
        await query(side === 'desktop' ? mixed.desktopUrl : mixed.cloudUrl, sql);
        const report = await apply(mixedConfig);
        expect(report.steps.reduce((n, s) => n + s.updated, 0), sql).toBe(1);
        expect(report.steps.reduce((n, s) => n + s.conflicts, 0), sql).toBe(0);
      }
      expect(await query(mixed.desktopUrl, 'SELECT label, title FROM job')).toEqual([{ label: 'xz    ', title: 'one, phone' }]);
    } finally {
      await mixed.drop();
    }
  });
});
