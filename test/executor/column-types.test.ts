import { describe, expect, it } from 'vitest';
import { apply, envFor, query, runCli, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const CONFIG = `
version: 1
databases:
  desktop:
    url: \${DESKTOP_DATABASE_URL}
  cloud:
    url: \${CLOUD_DATABASE_URL}
forward: { from: desktop, to: cloud }
tables:
  - name: doc
    primary_key: [id]
    direction: forward
  - name: tag
    primary_key: [a, b]
    direction: forward
`;

describe('column types that need care: json, geometric, identity keys, key-only tables', () => {
  const dbs = useFreshDatabases('types');

  it('rows with json, xml and point values sync, and an unchanged re-run writes nothing', async () => {
    const ddl = (identity: string): string => `
      CREATE TABLE doc (id integer ${identity} PRIMARY KEY, body json, spot point, note xml, big numeric, at timestamptz, d interval);
      CREATE TABLE tag (a integer NOT NULL, b text NOT NULL, PRIMARY KEY (a, b));`;
    await query(dbs.desktopUrl, ddl(''));
    await query(dbs.cloudUrl, ddl('GENERATED ALWAYS AS IDENTITY'));
    await query(
      dbs.desktopUrl,
      `INSERT INTO doc VALUES (1, '{"b": 1,  "a": [1, 2]}', point(1.5, -2), '<x a="1">t</x>', 123456789012345678901234567890.000001, '2026-01-02 03:04:05.123456+05:30', '1 day 02:03:04.5'),
                              (2, NULL, NULL, NULL, NULL, NULL, NULL);
       INSERT INTO tag VALUES (1, 'x'), (2, 'y');`,
    );
    const config = await testConfig(writeConfig(CONFIG), dbs);

    const first = await apply(config);
    expect(first.steps.map((s) => [s.table, s.status, s.inserted, s.rejected])).toEqual([
      ['doc', 'succeeded', 2, 0],
      ['tag', 'succeeded', 2, 0],
    ]);
    const cloud = await query<{ body: string; spot: string; at: boolean; big: string; d: boolean }>(
      dbs.cloudUrl,
      `SELECT body::text, spot::text, at = '2026-01-02 03:04:05.123456+05:30'::timestamptz AS at, big::text, d = '1 day 02:03:04.5'::interval AS d FROM doc WHERE id = 1`,
    );
    expect(cloud[0]).toEqual({ body: '{"b": 1,  "a": [1, 2]}', spot: '(1.5,-2)', at: true, big: '123456789012345678901234567890.000001', d: true });

    const second = await apply(config);
    expect(second.steps.map((s) => [s.table, s.inserted, s.updated, s.unchanged])).toEqual([
      ['doc', 0, 0, 2],
      ['tag', 0, 0, 2],
    ]);

    await query(dbs.desktopUrl, `UPDATE doc SET body = '{"b": 2}' WHERE id = 1`);
    const third = await apply(config);
    expect(third.steps[0]).toMatchObject({ updated: 1, unchanged: 1 });
  });

  it('a column named with the reserved __bisync_ prefix is refused by validate --live', async () => {
    await query(dbs.desktopUrl, 'CREATE TABLE odd (id integer PRIMARY KEY, __bisync_row text)');
    await query(dbs.cloudUrl, 'CREATE TABLE odd (id integer PRIMARY KEY, __bisync_row text)');
    const file = writeConfig(CONFIG.replace('tables:\n', 'tables:\n  - name: odd\n    primary_key: [id]\n    direction: forward\n'));
    const result = await runCli(['validate', '--live', '--config', file], envFor(dbs));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/table "odd" on desktop \(public\.odd\): column "__bisync_row" uses the __bisync_ prefix/);
  });
});
