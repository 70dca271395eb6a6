import { describe, expect, it } from 'vitest';
import { listRejects } from '../../src/commands/rejects.js';
import { verifyCommand } from '../../src/commands/verify.js';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

type Reject = { key: Record<string, string>; error_code: string | null; attempts: number };
const rejects = async (url: string): Promise<Reject[]> =>
  await query<Reject>(url, `SELECT key, error_code, attempts FROM bisync.rejects ORDER BY key::text`);

const configFor = (forward: string, table: string, direction: string) => `${configHead(forward)}
tables:
  - ${table}
    direction: ${direction}
    origin: { column: source, forward: D, reverse: M }
    deletes: mirror
`;

describe('a WIN1252 desktop and a UTF8 cloud: characters WIN1252 cannot hold are rejected row by row (SPEC §2.6)', () => {
  const dbs = useFreshDatabases('enc1252', { encoding: { desktop: 'WIN1252' } });

  it('a character the target encoding cannot hold rejects that row, not the table', async () => {
    expect(await query(dbs.desktopUrl, `SHOW server_encoding`)).toEqual([{ server_encoding: 'WIN1252' }]);
    await query(dbs.cloudUrl, `CREATE TABLE note (note_id integer PRIMARY KEY, body text)`);
    await query(dbs.desktopUrl, `CREATE TABLE note (note_id integer PRIMARY KEY, body text, source char(1))`);
    // 'Á' travels as the bytes C3 81, and 0x81 is no WIN1252 character: staged text must never be shown undecoded.
    await query(dbs.cloudUrl, `INSERT INTO note VALUES (1, 'café'), (2, 'plain'), (3, 'euro €'), (4, 'Ángel')`);
    const config = await testConfig(writeConfig(configFor('{ from: cloud, to: desktop }', 'name: note\n    primary_key: [note_id]', 'forward')), dbs);
    const first = await apply(config);
    expect(first.steps[0]).toMatchObject({ status: 'succeeded', inserted: 4, rejected: 0 });

    // The phone: an emoji in an update and in an insert (next to an 'Á'), and a row WIN1252 can hold.
    await query(dbs.cloudUrl, `UPDATE note SET body = 'smile 😀' WHERE note_id = 2;
      INSERT INTO note VALUES (5, 'Ángel 😀'), (6, 'niño');
      UPDATE note SET body = 'café crème' WHERE note_id = 1`);
    const report = await apply(config);

    expect(report.exitCode).toBe(0);
    expect(report.steps[0]).toMatchObject({ status: 'succeeded', inserted: 1, updated: 1, rejected: 2, deleted: 0 });
    expect(await query(dbs.desktopUrl, `SELECT note_id, body FROM note ORDER BY 1`)).toEqual([
      { note_id: 1, body: 'café crème' },
      { note_id: 2, body: 'plain' }, // its newer version is rejected; the old one is not taken for a deleted row
      { note_id: 3, body: 'euro €' },
      { note_id: 4, body: 'Ángel' },
      { note_id: 6, body: 'niño' },
    ]);
    expect(await rejects(dbs.desktopUrl)).toEqual([
      { key: { note_id: '2' }, error_code: '22P05', attempts: 1 },
      { key: { note_id: '5' }, error_code: '22P05', attempts: 1 },
    ]);
    const listed = await listRejects(config, []);
    expect(listed.rejects.map((r) => [r.key, r.row.body, r.error])).toEqual([
      [{ note_id: '2' }, 'smile \\360\\237\\230\\200', expect.stringContaining('has no equivalent in encoding "WIN1252"')],
      [{ note_id: '5' }, '\\303\\201ngel \\360\\237\\230\\200', expect.stringContaining('has no equivalent in encoding "WIN1252"')],
    ]);

    // Still there next run (same keys, one more attempt); fixed on the phone, it arrives and leaves rejects.
    const again = await apply(config);
    expect(again.steps[0]).toMatchObject({ status: 'succeeded', rejected: 2, deleted: 0 });
    expect((await rejects(dbs.desktopUrl)).map((r) => r.attempts)).toEqual([2, 2]);
    await query(dbs.cloudUrl, `UPDATE note SET body = 'smile :)' WHERE note_id = 2; DELETE FROM note WHERE note_id = 5`);
    const fixed = await apply(config);
    expect(fixed.steps[0]).toMatchObject({ status: 'succeeded', updated: 1, rejected: 0 });
    expect(await rejects(dbs.desktopUrl)).toEqual([]);
    expect(await query(dbs.desktopUrl, `SELECT body FROM note WHERE note_id = 2`)).toEqual([{ body: 'smile :)' }]);
    const verified = await verifyCommand(config);
    expect(verified.tables[0]).toMatchObject({ table: 'note', status: 'in-step' });
  });
});

describe('a UTF8 desktop and a LATIN1 cloud: a key LATIN1 cannot hold, both directions', () => {
  const dbs = useFreshDatabases('enclatin1', { encoding: { cloud: 'LATIN1' } });

  it('a key column with a character LATIN1 cannot hold is rejected under the same key each run; other keys sync, mirror deletes, and LATIN1 text reaches UTF8', async () => {
    await query(dbs.desktopUrl, `CREATE TABLE tag (name text PRIMARY KEY, label text, source char(1))`);
    await query(dbs.cloudUrl, `CREATE TABLE tag (name text PRIMARY KEY, label text, source char(1))`);
    await query(dbs.desktopUrl, `INSERT INTO tag (name, label) VALUES ('zoë', 'one'), ('€uro', 'euro sign: not in LATIN1'), ('plain', 'two'), ('ÿ-end', 'three')`);
    const config = await testConfig(writeConfig(configFor('{ from: desktop, to: cloud }', 'name: tag\n    primary_key: [name]', 'both')), dbs);

    const first = await apply(config, { direction: 'forward' });
    expect(first.steps[0]).toMatchObject({ status: 'succeeded', inserted: 3, rejected: 1 });
    expect(await rejects(dbs.cloudUrl)).toEqual([{ key: { name: '\\342\\202\\254uro' }, error_code: '22P05', attempts: 1 }]);
    const second = await apply(config, { direction: 'forward' });
    expect(second.steps[0]).toMatchObject({ status: 'succeeded', rejected: 1, deleted: 0 });
    expect(await rejects(dbs.cloudUrl)).toEqual([{ key: { name: '\\342\\202\\254uro' }, error_code: '22P05', attempts: 2 }]);

    // A key with a character LATIN1 holds is matched decoded: deleting it on the desktop deletes it on the cloud, and only it.
    await query(dbs.desktopUrl, `DELETE FROM tag WHERE name = 'zoë'`);
    const deleted = await apply(config, { direction: 'forward', allowDeletes: true });
    expect(deleted.steps[0]).toMatchObject({ status: 'succeeded', deleted: 1, rejected: 1 });
    expect(await query(dbs.cloudUrl, `SELECT name, label FROM tag ORDER BY 1`)).toEqual([
      { name: 'plain', label: 'two' },
      { name: 'ÿ-end', label: 'three' },
    ]);

    // Reverse: LATIN1 text the phone writes converts into UTF8 without loss.
    await query(dbs.cloudUrl, `INSERT INTO tag VALUES ('façade', 'ñ ü ß', 'M')`);
    const reverse = await apply(config, { direction: 'reverse' });
    expect(reverse.steps[0]).toMatchObject({ status: 'succeeded', inserted: 1, rejected: 0 });
    expect(await query(dbs.desktopUrl, `SELECT label FROM tag WHERE name = 'façade'`)).toEqual([{ label: 'ñ ü ß' }]);
  });
});
