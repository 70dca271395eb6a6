import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { configHead, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const CONFIG = `
${configHead()}tables:
  - name: t
    primary_key: [id]
    direction: forward
`;

describe('the step lock cannot be taken by a role that cannot write bisync state', () => {
  const dbs = useFreshDatabases('lockdos');

  it('any role that can connect holding pg_advisory_lock with bisync\'s keys no longer makes apply exit 3', async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) await query(url, 'CREATE TABLE t (id integer PRIMARY KEY, v text)');
    await query(dbs.desktopUrl, `INSERT INTO t VALUES (1, 'one')`);
    const role = `nobody_${randomBytes(4).toString('hex')}`;
    await query(dbs.cloudUrl, `CREATE ROLE ${role} LOGIN PASSWORD 'nobody-pw'`);
    const file = writeConfig(CONFIG);
    expect((await runCli(['apply', '--config', file, '--log-level', 'error'], envFor(dbs))).code).toBe(0);

    const url = new URL(dbs.cloudUrl);
    url.username = role;
    url.password = 'nobody-pw';
    const squatter = new pg.Client({ connectionString: url.toString() });
    await squatter.connect();
    try {
      // The keys the advisory lock of every step used: (hashtext('bisync'), hashtext('<schema>.<table>/<direction>')).
      await squatter.query(`SELECT pg_advisory_lock(hashtext('bisync'), hashtext('bisync.t/forward'))`);
      await query(dbs.desktopUrl, `INSERT INTO t VALUES (2, 'two')`);
      const result = await runCli(['apply', '--config', file, '--log-level', 'error'], envFor(dbs));
      expect(result.code).toBe(0);
      expect(await query(dbs.cloudUrl, 'SELECT id FROM t ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
      // And it cannot lock the state row instead: it has no privilege on bisync's schema.
      await expect(squatter.query('SELECT 1 FROM bisync.state FOR UPDATE NOWAIT')).rejects.toThrow(/permission denied/);
    } finally {
      await squatter.end();
      await query(dbs.cloudUrl, `DROP ROLE ${role}`);
    }
  });
});
