import { describe, expect, it } from 'vitest';
import type { PendingReject } from '../../src/commands/rejects.js';
import { configHead, envFor, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const CONFIG = `
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
  - name: customers
    primary_key: [id]
    direction: forward
`;

interface LogLine {
  level: number;
  msg: string;
  key?: Record<string, string>;
}

const logLines = (stderr: string): LogLine[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

describe('bisync rejects: what the target refused, and what to do about it', () => {
  const dbs = useFreshDatabases('rejects');
  let file = '';
  const cli = async (...args: string[]) => await runCli([...args, '--config', file], envFor(dbs));

  it('a new reject is logged at warn with its key and reason, once; apply --fail-on-rejects exits 1', async () => {
    await query(dbs.desktopUrl, `CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)`);
    await query(dbs.cloudUrl, `CREATE TABLE customers (id integer PRIMARY KEY, name varchar(5) NOT NULL, source char(1))`);
    await query(dbs.desktopUrl, `INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bartholomew'), (3, 'Cy')`);
    file = writeConfig(CONFIG);

    const first = await cli('apply', '--log-format', 'json', '--log-level', 'warn');
    expect(first.code).toBe(0);
    const warnings = logLines(first.stderr).filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toContain('customers forward: row id=2 rejected by cloud: value too long for type character varying(5)');
    expect(warnings.find((l) => l.msg.includes('row id=2'))?.key).toEqual({ id: '2' });

    const paged = await cli('apply', '--fail-on-rejects', '--log-format', 'json', '--log-level', 'warn');
    expect(paged.code).toBe(1);
    // Tried again and refused again: not new, so no second warn line for the row.
    expect(logLines(paged.stderr).filter((l) => l.msg.includes('row id=2 rejected'))).toEqual([]);
  });

  it('bisync rejects lists reason, key, attempts, first seen and the row, and exits 1 while any are pending', async () => {
    const listed = await cli('rejects', '--json');
    expect(listed.code).toBe(1);
    const doc = JSON.parse(listed.stdout) as { ok: boolean; rejects: PendingReject[] };
    expect(doc.ok).toBe(false);
    expect(doc.rejects).toHaveLength(1);
    expect(doc.rejects[0]).toMatchObject({
      table: 'customers',
      direction: 'forward',
      database: 'cloud',
      reason: 'error',
      key: { id: '2' },
      errorCode: '22001',
      error: 'value too long for type character varying(5)',
      attempts: 2,
      row: { id: '2', name: 'Bartholomew' },
    });
    expect(doc.rejects[0]?.firstSeen).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const text = await cli('rejects');
    expect(text.stdout).toMatch(/customers\s+forward \(to cloud\)\s+2\s+error\s+2\s+\S+Z\s+22001 value too long for type character varying\(5\)/);
    expect(text.stdout).toContain('1 reject pending');
  });

  it('rejects retry --key marks one reject for the next run (its attempts start over)', async () => {
    const retried = await cli('rejects', 'retry', '--table', 'customers', '--key', '2');
    expect(retried.code).toBe(0);
    expect(retried.stdout).toContain('1 reject marked for the next run.');
    expect(await query(dbs.cloudUrl, `SELECT key, attempts FROM bisync.rejects`)).toEqual([{ key: { id: '2' }, attempts: 0 }]);

    const unknown = await cli('rejects', 'retry', '--table', 'customers', '--key', '{"nope": 1}');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('its columns are not the key columns (id)');
  });

  it('rejects discard removes them: no run tries them again, and status stops asking for you', async () => {
    const discarded = await cli('rejects', 'discard', '--table', 'customers', '--all', '--json');
    expect(discarded.code).toBe(0);
    expect(JSON.parse(discarded.stdout)).toMatchObject({ ok: true, action: 'discard', rows: [{ table: 'customers', direction: 'forward', database: 'cloud', key: { id: '2' } }] });
    expect(await query(dbs.cloudUrl, `SELECT count(*)::int AS n FROM bisync.rejects`)).toEqual([{ n: 0 }]);
    const none = await cli('rejects');
    expect(none.stdout).toContain('No rejects pending.');
    expect(none.code).toBe(0);
    expect((await cli('status')).code).toBe(0);
  });
});
