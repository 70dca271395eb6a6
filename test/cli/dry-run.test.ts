import { describe, expect, it } from 'vitest';
import { configHead, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

interface StepJson {
  table: string;
  direction: string;
  status: string;
  read: number;
  inserted: number;
  updated: number;
  unchanged: number;
  protected: number;
  rejected: number;
  deleted: number;
  deletedKeys?: string[];
}

const counts = (s: StepJson): Omit<StepJson, 'status' | 'deletedKeys'> => ({
  table: s.table,
  direction: s.direction,
  read: s.read,
  inserted: s.inserted,
  updated: s.updated,
  unchanged: s.unchanged,
  protected: s.protected,
  rejected: s.rejected,
  deleted: s.deleted,
});

/** A config of the two test databases (origin rule source D/M) with these tables. */
function configWith(tables: string): string {
  return writeConfig(`
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
${tables}`);
}

/** Everything a dry run could leave behind on the cloud: its rows, bisync's state schema, the runs. */
async function cloudSnapshot(url: string): Promise<unknown> {
  return await query(
    url,
    `SELECT (SELECT count(*)::int FROM orders) AS orders,
            (SELECT count(*)::int FROM order_items) AS items,
            (SELECT coalesce(sum(hashtext(o::text)::bigint), 0)::text FROM orders o) AS orders_fp,
            (SELECT coalesce(sum(hashtext(i::text)::bigint), 0)::text FROM order_items i) AS items_fp,
            (SELECT count(*)::int FROM pg_namespace WHERE nspname = 'bisync') AS state_schema,
            (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'bisync' AND tablename = 'runs') AS runs_table`,
  );
}

describe('apply --dry-run runs a direction in one transaction per database, rolled back at the end', () => {
  const dbs = useFreshDatabases('dry_run');
  let file = '';

  it('a dry run into an empty cloud reports no rejects for child rows whose parents the run would insert, and the same counts as the real run', async () => {
    await withClient(dbs.desktopUrl, async (c) => {
      await c.query(`
        CREATE TABLE orders (order_id integer PRIMARY KEY, customer text NOT NULL);
        CREATE TABLE order_items (item_id integer PRIMARY KEY, order_id integer NOT NULL REFERENCES orders, qty integer NOT NULL);
        INSERT INTO orders SELECT i, 'customer ' || i FROM generate_series(1, 30) i;
        INSERT INTO order_items SELECT i, 1 + i % 30, i FROM generate_series(1, 50) i;`);
    });
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(`
        CREATE TABLE orders (order_id integer PRIMARY KEY, customer text NOT NULL, source char(1) NOT NULL DEFAULT 'M');
        CREATE TABLE order_items (item_id integer PRIMARY KEY, order_id integer NOT NULL REFERENCES orders, qty integer NOT NULL,
          line_no serial, source char(1) NOT NULL DEFAULT 'M');`);
    });
    file = configWith(`
  - name: orders
    primary_key: [order_id]
    direction: forward
  - name: order_items
    primary_key: [item_id]
    direction: forward
    after: [orders]
    deletes: mirror
`);
    const before = await cloudSnapshot(dbs.cloudUrl);

    const dry = await runCli(['apply', '--dry-run', '--json', '--config', file], envFor(dbs));
    const dryText = await runCli(['apply', '--dry-run', '--config', file], envFor(dbs));

    expect(dry.code, dry.stderr).toBe(0);
    const drySteps = (JSON.parse(dry.stdout) as { steps: StepJson[] }).steps;
    expect(drySteps.map((s) => [s.table, s.status, s.inserted, s.rejected])).toEqual([
      ['orders', 'succeeded', 30, 0],
      ['order_items', 'succeeded', 50, 0],
    ]);
    // Nothing changed: no rows, no state schema (the dry run created it inside its transaction).
    expect(await cloudSnapshot(dbs.cloudUrl)).toEqual(before);
    // The one thing a rollback does not undo is documented and said: the sequence of line_no moved.
    expect(dryText.code).toBe(0);
    expect(dryText.stdout).toContain('DRY RUN (one transaction per database, rolled back at the end)');
    expect(dryText.stdout).toContain('order_items forward: the dry run drew 50 values from the sequence of line_no');

    const real = await runCli(['apply', '--json', '--config', file], envFor(dbs));
    expect(real.code, real.stderr).toBe(0);
    const realSteps = (JSON.parse(real.stdout) as { steps: StepJson[] }).steps;
    expect(drySteps.map(counts)).toEqual(realSteps.map(counts));
    expect(await query(dbs.cloudUrl, `SELECT count(*)::int AS n FROM order_items`)).toEqual([{ n: 50 }]);
  });

  it('a dry run names the keys deletes: mirror would delete, and deletes nothing', async () => {
    await query(dbs.desktopUrl, `DELETE FROM order_items WHERE item_id IN (3, 17)`);
    const before = await cloudSnapshot(dbs.cloudUrl);

    const dry = await runCli(['apply', '--dry-run', '--json', '--config', file], envFor(dbs));
    const text = await runCli(['apply', '--dry-run', '--config', file], envFor(dbs));

    expect(dry.code, dry.stderr).toBe(0);
    const items = (JSON.parse(dry.stdout) as { steps: StepJson[] }).steps.find((s) => s.table === 'order_items');
    expect(items).toMatchObject({ deleted: 2, deletedKeys: ['{"item_id": 3}', '{"item_id": 17}'] });
    expect(text.stdout).toContain('order_items forward: deletes: mirror would delete {"item_id": 3}, {"item_id": 17}');
    expect(await cloudSnapshot(dbs.cloudUrl)).toEqual(before);
  });

  it('a dry run of an edits: both table works before the source has bisync state, and leaves none behind', async () => {
    await query(dbs.desktopUrl, `CREATE TABLE notes (note_id integer PRIMARY KEY, body text NOT NULL); INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 5) i`);
    await query(dbs.cloudUrl, `CREATE TABLE notes (note_id integer PRIMARY KEY, body text NOT NULL, source char(1) NOT NULL DEFAULT 'M')`);
    const notes = configWith(`
  - name: notes
    primary_key: [note_id]
    direction: both
    edits: both
`);
    const stateOnDesktop = `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'bisync'`;
    expect(await query(dbs.desktopUrl, stateOnDesktop)).toEqual([{ n: 0 }]);

    const dry = await runCli(['apply', '--dry-run', '--json', '--config', notes], envFor(dbs));

    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    const steps = (JSON.parse(dry.stdout) as { steps: StepJson[] }).steps;
    expect(steps.map((s) => [s.table, s.direction, s.status, s.inserted])).toEqual([
      ['notes', 'forward', 'succeeded', 5],
      ['notes', 'reverse', 'succeeded', 0],
    ]);
    expect(await query(dbs.desktopUrl, stateOnDesktop)).toEqual([{ n: 0 }]);
    expect(await query(dbs.cloudUrl, `SELECT count(*)::int AS n FROM notes`)).toEqual([{ n: 0 }]);
  });
});
