import { describe, expect, it } from 'vitest';
import { configHead, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

// Forward only; the desktop has a cursor column, so the second run is incremental.
const CONFIG = `
${configHead()}tables:
  - name: t
    primary_key: [id]
    direction: forward
    timestamps: { desktop: [updated_at] }
`;

async function setup(dbs: { desktopUrl: string; cloudUrl: string }): Promise<string> {
  await query(dbs.desktopUrl, `CREATE TABLE t (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now() - interval '1 day')`);
  await query(dbs.desktopUrl, `INSERT INTO t (id, v, updated_at) VALUES (1, 'one', now() - interval '2 days'), (2, 'two', now() - interval '1 day')`);
  await query(dbs.cloudUrl, `CREATE TABLE t (id integer PRIMARY KEY, v text, updated_at timestamptz)`);
  const file = writeConfig(CONFIG);
  const first = await runCli(['apply', '--config', file, '--log-level', 'error'], envFor(dbs));
  expect(first.code).toBe(0);
  return file;
}

describe('a watermark ahead of the source clock is not trusted: reported, and the step reads in full', () => {
  const dbs = useFreshDatabases('futurewm');

  it('state.watermark set to 9999-12-31: status says so (not "waiting 0"), plan reads in full, apply brings the new row and resets it', async () => {
    const file = await setup(dbs);
    await query(dbs.cloudUrl, `UPDATE bisync.state SET watermark = '9999-12-31 00:00:00+00'`);
    await query(dbs.desktopUrl, `INSERT INTO t (id, v, updated_at) VALUES (3, 'three', now())`);

    const status = await runCli(['status', '--json', '--config', file], envFor(dbs));
    const doc = JSON.parse(status.stdout) as { steps: { waiting: number | null }[]; attention: string[] };
    expect(doc.steps[0]?.waiting).toBe(3);
    expect(doc.attention.join('\n')).toMatch(/watermark 9999-12-31T00:00:00\.000000Z is ahead of desktop's clock/);

    const plan = await runCli(['plan', '--format', 'json', '--config', file], envFor(dbs));
    const step = (JSON.parse(plan.stdout) as { steps: { mode: string; reason: string }[] }).steps[0];
    expect(step?.mode).toBe('full');
    expect(step?.reason).toMatch(/ahead of desktop's clock/);

    expect((await runCli(['apply', '--config', file, '--log-level', 'error'], envFor(dbs))).code).toBe(0);
    expect(await query(dbs.cloudUrl, 'SELECT id, v FROM t ORDER BY id')).toEqual([
      { id: 1, v: 'one' },
      { id: 2, v: 'two' },
      { id: 3, v: 'three' },
    ]);
    const [state] = await query<{ sane: boolean }>(dbs.cloudUrl, `SELECT watermark <= now() AS sane FROM bisync.state`);
    expect(state?.sane).toBe(true);
  });
});

describe('rejects rows are keys to read again from the source, never data to write', () => {
  const dbs = useFreshDatabases('plantreject');

  it('planted rejects (row 1 with other content, a key the source does not have) write nothing of their own', async () => {
    const file = await setup(dbs);
    await withClient(dbs.cloudUrl, async (c) => {
      await c.query(
        `INSERT INTO bisync.rejects (table_name, direction, key, row_data, reason, error)
         VALUES ('t', 'forward', '{"id": "1"}', '{"id": "1", "v": "planted", "updated_at": null}', 'error', 'x'),
                ('t', 'forward', '{"id": "999"}', '{"id": "999", "v": "planted", "updated_at": null}', 'error', 'x')`,
      );
    });
    const applied = await runCli(['apply', '--json', '--config', file, '--log-level', 'error'], envFor(dbs));
    expect(applied.code).toBe(0);
    expect(await query(dbs.cloudUrl, 'SELECT id, v FROM t ORDER BY id')).toEqual([
      { id: 1, v: 'one' },
      { id: 2, v: 'two' },
    ]);
    const step = (JSON.parse(applied.stdout) as { steps: { mode: string; reason: string; retried: number }[] }).steps[0];
    expect(step?.mode).toBe('full');
    expect(step?.reason).toMatch(/2 rejected rows pending: every row is read, so each is read again from desktop/);
    expect(step?.retried).toBe(1);
    expect(await query(dbs.cloudUrl, 'SELECT key FROM bisync.rejects')).toEqual([]);
  });
});
