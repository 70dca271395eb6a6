import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { applyText } from '../../src/cli/apply-output.js';
import { planCommand } from '../../src/commands/plan.js';
import { statusCommand } from '../../src/commands/status.js';
import { verifyCommand } from '../../src/commands/verify.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { setDatabaseDefaults, useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { ThreeWayPair } from '../three-way/three-way-fixture.js';
import { jobsConfig, seedDesktop } from './jobs-fixture.js';

/**
 * Issue 13, items 2, 4, 7 and 9: bisync on servers whose sessions are not on UTC and not ISO.
 * `timestamp` and `date` values are the server's local time; PostgreSQL turns them into instants
 * (and back) with the session's TimeZone, so bisync's steps run in each server's own TimeZone and
 * everything it reads back as text is ISO UTC.
 */

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

const watermark = async (url: string, table: string, direction: string): Promise<string | null> =>
  (
    await query<{ w: string | null }>(
      url,
      `SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM bisync.state WHERE table_name = $1 AND direction = $2`,
      [table, direction],
    )
  )[0]?.w ?? null;

/**
 * The jobs slice with cursor columns of the given types on the cloud (the desktop has none), as
 * in the issue: `updated_at timestamp DEFAULT now()` holds the cloud server's wall-clock time.
 */
async function createSchema(dbs: TestDatabases, cursorTypes: { client: [string, string]; job: [string, string] }, jobExtra = ''): Promise<void> {
  await withClient(dbs.desktopUrl, async (c) => {
    await c.query(`
      CREATE TABLE client (client_id integer PRIMARY KEY, name text NOT NULL);
      CREATE TABLE job (job_id integer PRIMARY KEY, client_id integer NOT NULL REFERENCES client, title text NOT NULL, status text);`);
  });
  const now = (type: string): string => (type === 'date' ? 'current_date' : 'now()');
  const [cu, cc] = cursorTypes.client;
  const [ju, jc] = cursorTypes.job;
  await withClient(dbs.cloudUrl, async (c) => {
    await c.query(`
      CREATE TABLE client (client_id integer PRIMARY KEY, name text NOT NULL, source char(1),
        created_at ${cc} NOT NULL DEFAULT ${now(cc)}, updated_at ${cu} NOT NULL DEFAULT ${now(cu)});
      CREATE TABLE job (job_id integer PRIMARY KEY, client_id integer NOT NULL REFERENCES client, title text NOT NULL, status text,
        source char(1), created_at ${jc} NOT NULL DEFAULT ${now(jc)}, updated_at ${ju} NOT NULL DEFAULT ${now(ju)}${jobExtra});`);
  });
}

const jobIds = async (url: string, above: number): Promise<number[]> =>
  (await query<{ job_id: number }>(url, 'SELECT job_id FROM job WHERE job_id > $1 ORDER BY job_id', [above])).map((r) => r.job_id);

/**
 * The scenario: a phone's transaction inserts row `late` and stays open, row `early`
 * commits meanwhile, reverse runs, then the late row commits. With lookback 0s only the clamp
 * (the horizon, compared in the same clock as the cursor values) can bring it.
 */
async function lateCommitScenario(dbs: TestDatabases, config: ResolvedConfig, late: number, early: number, phoneUrl = dbs.cloudUrl): Promise<void> {
  const phone = new pg.Client({ connectionString: phoneUrl });
  await phone.connect();
  try {
    await phone.query('BEGIN');
    await phone.query(`INSERT INTO job (job_id, client_id, title, status, source) VALUES ($1, 1, 'late', 'open', 'M')`, [late]);
    await new Promise((r) => setTimeout(r, 20));
    await query(phoneUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES ($1, 1, 'early commit', 'open', 'M')`, [early]);

    const first = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(first.steps[0]?.status).toBe('succeeded');
    expect(first.steps[0]?.read).toBe(1); // the early row only: the late one is not committed yet

    await phone.query('COMMIT');
  } finally {
    await phone.end();
  }
  const second = await apply(config, { direction: 'reverse', tables: ['job'] });
  expect(second.steps[0]?.status).toBe('succeeded');
}

describe('timestamp cursors are the server’s local time: a late commit is not lost when the server is not on UTC', () => {
  const dbs = useFreshDatabases('tzlate');

  it('America/New_York, updated_at timestamp DEFAULT now(): a row the phone commits after a reverse run reaches the desktop on the next run', async () => {
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York' });
    await createSchema(dbs, { client: ['timestamp', 'timestamp'], job: ['timestamp', 'timestamp'] });
    await seedDesktop(dbs, 1, 1);
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await apply(config);

    await lateCommitScenario(dbs, config, 2, 3);

    expect(await jobIds(dbs.desktopUrl, 1)).toEqual([2, 3]);
  });
});

describe('timestamp, timestamptz and date cursors in one list on a server half an hour off the hour (Asia/Kolkata)', () => {
  const dbs = useFreshDatabases('tzmixed');

  it('the late row arrives, and the watermark is the newest cursor read as an instant of the server’s own zone', async () => {
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'Asia/Kolkata' });
    // client: timestamptz and timestamp; job: timestamp and date.
    await createSchema(dbs, { client: ['timestamptz', 'timestamp'], job: ['timestamp', 'date'] });
    await seedDesktop(dbs, 1, 1);
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (9, 'phone client', 'M')`);

    await lateCommitScenario(dbs, config, 2, 3);
    await apply(config, { direction: 'reverse' });

    expect(await jobIds(dbs.desktopUrl, 1)).toEqual([2, 3]);
    // Nothing is in flight now, so the watermark is the newest cursor itself, converted as
    // PostgreSQL converts it in a session of the cloud (Asia/Kolkata): not 5.5 hours off.
    for (const table of ['job', 'client']) {
      const [newest] = await query<{ w: string }>(
        dbs.cloudUrl,
        `SELECT to_char(max(greatest(updated_at, created_at))::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM ${table} WHERE source = 'M'`,
      );
      expect(await watermark(dbs.desktopUrl, table, 'reverse'), table).toBe(newest?.w);
    }
  });
});

describe('timestamp ↔ timestamptz columns convert as an SQL assignment on the target server would', () => {
  const dbs = useFreshDatabases('tzpair');

  it('desktop timestamp 09:00 → cloud timestamptz on America/New_York is 09:00-04, the same as INSERT … VALUES (timestamp) there; verify agrees', async () => {
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'America/New_York' });
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York' });
    await query(dbs.desktopUrl, `CREATE TABLE visit (visit_id integer PRIMARY KEY, starts_at timestamp, day date)`);
    await query(dbs.cloudUrl, `CREATE TABLE visit (visit_id integer PRIMARY KEY, starts_at timestamptz, day timestamptz, source char(1))`);
    await query(dbs.desktopUrl, `INSERT INTO visit VALUES (1, '2026-07-01 09:00', '2026-07-01'), (2, '2026-12-01 23:30:00.123456', '2026-12-01')`);
    const config = await visitConfig(dbs, 'forward');

    const report = await apply(config);
    expect(report.steps[0]?.status).toBe('succeeded');

    const rows = await query<{ visit_id: number; starts_at: string; day: string; assigned: boolean }>(
      dbs.cloudUrl,
      `SELECT v.visit_id, to_char(v.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS starts_at,
              to_char(v.day AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS day,
              v.starts_at = (CASE v.visit_id WHEN 1 THEN '2026-07-01 09:00'::timestamp ELSE '2026-12-01 23:30:00.123456'::timestamp END) AS assigned
         FROM visit AS v ORDER BY 1`,
    );
    expect(rows).toEqual([
      { visit_id: 1, starts_at: '2026-07-01 13:00:00.000000', day: '2026-07-01 04:00', assigned: true },
      { visit_id: 2, starts_at: '2026-12-02 04:30:00.123456', day: '2026-12-01 05:00', assigned: true },
    ]);
    expect((await verifyCommand(config)).ok).toBe(true);

    // The old shift (09:00 read as UTC) is drift now, not "in step".
    await query(dbs.cloudUrl, `UPDATE visit SET starts_at = '2026-07-01 09:00+00' WHERE visit_id = 1`);
    const drift = await verifyCommand(config);
    expect(drift.ok).toBe(false);
    expect(drift.tables[0]?.findings.flatMap((f) => f.keys)).toEqual([{ visit_id: '1' }]);
  });

  it('variation: cloud timestamptz (America/New_York) → desktop timestamp and date on Asia/Kolkata take the desktop’s wall clock and day', async () => {
    await query(dbs.desktopUrl, `DROP TABLE visit`);
    await query(dbs.cloudUrl, `DROP TABLE visit`);
    await setDatabaseDefaults(dbs.desktopUrl, { TimeZone: 'Asia/Kolkata' });
    await query(dbs.desktopUrl, `CREATE TABLE visit (visit_id integer PRIMARY KEY, starts_at timestamp, day date)`);
    await query(dbs.cloudUrl, `CREATE TABLE visit (visit_id integer PRIMARY KEY, starts_at timestamptz, day timestamptz, source char(1))`);
    // 22:00 in New York is 07:30 the next day in Kolkata.
    await query(dbs.cloudUrl, `INSERT INTO visit VALUES (1, '2026-07-01 09:00-04', '2026-07-01 22:00-04', 'M')`);
    const config = await visitConfig(dbs, 'reverse');

    const report = await apply(config);
    expect(report.steps[0]?.status).toBe('succeeded');

    const rows = await query<{ starts_at: string; day: string }>(dbs.desktopUrl, `SELECT starts_at::text, day::text FROM visit`);
    expect(rows).toEqual([{ starts_at: '2026-07-01 18:30:00', day: '2026-07-02' }]);
    expect((await verifyCommand(config)).ok).toBe(true);
  });
});

async function visitConfig(dbs: TestDatabases, direction: 'forward' | 'reverse'): Promise<ResolvedConfig> {
  const file = writeConfig(`
${configHead()}tables:
  - name: visit
    primary_key: [visit_id]
    direction: ${direction}
${direction === 'reverse' ? '    origin: { column: source, forward: D, reverse: M }' : ''}
`);
  return await testConfig(file, dbs);
}

describe('DateStyle and TimeZone session defaults: everything bisync reads back is unambiguous', () => {
  const dbs = useFreshDatabases('datestyle');

  it('with DateStyle SQL, DMY and America/New_York on the cloud, the read horizon is ISO UTC and the watermark is the newest cursor read', async () => {
    await setDatabaseDefaults(dbs.cloudUrl, { DateStyle: 'SQL, DMY', TimeZone: 'America/New_York' });
    await setDatabaseDefaults(dbs.desktopUrl, { DateStyle: 'SQL, DMY', TimeZone: 'America/New_York' });
    await createSchema(dbs, { client: ['timestamptz', 'timestamptz'], job: ['timestamptz', 'timestamptz'] });
    await seedDesktop(dbs, 1, 1);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (2, 1, 'phone', 'open', 'M')`);

    // The horizon as the plan reads it, on a session with the database's defaults.
    const plan = await planCommand(config, { direction: 'reverse', tables: ['job'], mode: 'auto' });
    const horizon = plan.steps[0]?.statements.find((s) => s.kind === 'read-horizon');
    if (horizon === undefined) throw new Error('no read-horizon statement');
    const [read] = await query<{ horizon: string }>(dbs.cloudUrl, horizon.sql, horizon.params.map((p) => p.value));
    expect(read?.horizon).toMatch(ISO_UTC);

    const report = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(report.steps[0]?.watermarkAfter).toMatch(ISO_UTC);
    const [newest] = await query<{ w: string }>(
      dbs.cloudUrl,
      `SELECT to_char(max(greatest(updated_at, created_at)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM job WHERE source = 'M'`,
    );
    expect(await watermark(dbs.desktopUrl, 'job', 'reverse')).toBe(newest?.w);

    const status = await statusCommand(config, ['job']);
    for (const step of status.steps) if (step.watermark !== null) expect(step.watermark).toMatch(ISO_UTC);
    expect(status.steps.find((s) => s.direction === 'reverse')?.waiting).toBe(0);
  });

  it('variation: Asia/Kolkata (UTC+05:30) with DateStyle German on both sides: the watermark is the newest cursor, a second run reads only the row at it, and verify is in step', async () => {
    await setDatabaseDefaults(dbs.cloudUrl, { DateStyle: 'German, DMY', TimeZone: 'Asia/Kolkata' });
    await setDatabaseDefaults(dbs.desktopUrl, { DateStyle: 'German, DMY', TimeZone: 'Asia/Kolkata' });
    const config = await jobsConfig(dbs, { lookback: '0s' });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at) VALUES (3, 1, 'phone', 'open', 'M', now() - interval '1 second')`);
    const first = await apply(config, { direction: 'reverse', tables: ['job'] });
    expect(first.steps[0]?.read).toBe(2); // job 2 sits at the watermark (>=), job 3 is new
    const [newest] = await query<{ w: string }>(
      dbs.cloudUrl,
      `SELECT to_char(max(greatest(updated_at, created_at)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM job WHERE source = 'M'`,
    );
    expect(await watermark(dbs.desktopUrl, 'job', 'reverse')).toBe(newest?.w);
    // The step runs (no probe: it would find the row at the watermark unchanged and not run the step).
    const second = await apply(config, { direction: 'reverse', tables: ['job'], probe: false });
    expect(second.steps[0]?.mode).toBe('incremental');
    expect(second.steps[0]?.read).toBe(1); // the newest row itself (cursor ≥ watermark), nothing older
    expect((await verifyCommand(config)).ok).toBe(true);
  });
});

describe('status and dry run', () => {
  const dbs = useFreshDatabases('tzstatus');

  it('status counts rows waiting with the settings apply reads with (the source’s TimeZone): one new row on an America/New_York timestamp cursor is 1 waiting', async () => {
    await setDatabaseDefaults(dbs.cloudUrl, { TimeZone: 'America/New_York', DateStyle: 'SQL, DMY' });
    await createSchema(dbs, { client: ['timestamp', 'timestamp'], job: ['timestamp', 'timestamp'] }, ', seq_no bigserial');
    await seedDesktop(dbs, 1, 2);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (10, 1, 'old', 'open', 'M')`);
    await apply(config, { direction: 'reverse' });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at, created_at) VALUES (11, 1, 'new', 'open', 'M', now() + interval '1 minute', now() + interval '1 minute')`);

    const status = await statusCommand(config, ['job']);
    expect(status.steps.find((s) => s.direction === 'reverse')?.waiting).toBe(1);
  });

  it('a dry run that inserts into a table with a sequence default says the real run will number its rows after the values it drew', async () => {
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) SELECT i, 1, 'job ' || i, 'open' FROM generate_series(100, 102) AS i`);
    const config = await jobsConfig(dbs);
    const before = await query<{ last: string }>(dbs.cloudUrl, `SELECT last_value::text AS last FROM job_seq_no_seq`);

    const report = await apply(config, { direction: 'forward', tables: ['job'], dryRun: true });

    expect(report.steps[0]?.inserted).toBe(3);
    expect(report.steps[0]?.sequenceDefaults).toEqual(['seq_no']);
    expect(applyText(report)).toMatch(/job forward: the dry run drew 3 values from the sequence of seq_no; PostgreSQL does not roll sequences back/);
    const after = await query<{ last: string }>(dbs.cloudUrl, `SELECT last_value::text AS last FROM job_seq_no_seq`);
    expect(Number(after[0]?.last) - Number(before[0]?.last)).toBe(3); // what the note says is what happened
  });
});

describe('edits: both between servers in different time zones', () => {
  it('a timestamptz column agreed on both sides is not a change: re-runs write nothing and park no conflict, and an edit travels (Asia/Kolkata desktop, America/New_York cloud)', async () => {
    const pair = await ThreeWayPair.create('tz3way', { cursors: true });
    try {
      await setDatabaseDefaults(pair.dbs.desktopUrl, { TimeZone: 'Asia/Kolkata', DateStyle: 'SQL, DMY' });
      await setDatabaseDefaults(pair.dbs.cloudUrl, { TimeZone: 'America/New_York', DateStyle: 'SQL, DMY' });
      await pair.agreed([
        [1, 'one', 'open'],
        [2, 'two', null],
      ]);
      await pair.sql('cloud', `INSERT INTO job (job_id, title, status, source) VALUES (3, 'phone', 'open', 'M')`);
      await pair.apply('both');

      const again = await pair.apply('both', { mode: 'full' });
      expect(again.steps.map((s) => [s.direction, s.inserted, s.updated, s.conflicts])).toEqual([
        ['forward', 0, 0, 0],
        ['reverse', 0, 0, 0],
      ]);
      expect(await pair.conflicts('desktop')).toEqual([]);
      expect(await pair.conflicts('cloud')).toEqual([]);

      await pair.sql('desktop', `UPDATE job SET title = 'one, edited' WHERE job_id = 1`);
      await pair.apply('both');
      expect((await pair.job('cloud', 1))?.title).toBe('one, edited');
      expect(await pair.conflicts('cloud')).toEqual([]);
    } finally {
      await pair.drop();
    }
  });
});
