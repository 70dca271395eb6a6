import { describe, expect, it } from 'vitest';
import { useFreshDatabases, withClient } from './harness/fresh-databases.js';

describe('test harness', () => {
  const dbs = useFreshDatabases('harness');

  it('hands each test file two distinct, empty, real PostgreSQL databases', async () => {
    const desktop = await withClient(dbs.desktopUrl, async (c) => (await c.query('SELECT current_database() AS db, count(*)::int AS n FROM pg_tables WHERE schemaname = $1', ['public'])).rows[0]);
    const cloud = await withClient(dbs.cloudUrl, async (c) => (await c.query('SELECT current_database() AS db, count(*)::int AS n FROM pg_tables WHERE schemaname = $1', ['public'])).rows[0]);
    expect(desktop.db).not.toBe(cloud.db);
    expect(desktop.n).toBe(0);
    expect(cloud.n).toBe(0);
  });
});
