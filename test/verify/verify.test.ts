/**
 * `bisync verify` against real databases: a pair in step passes, every kind of planted drift is found
 * and named by key, protected rows are not drift, types and column mappings compare by value, and
 * verify writes nothing to either side.
 */
import { describe, expect, it } from 'vitest';
import type { TableVerifyResult, VerifyReport } from '../../src/commands/verify.js';
import type { Finding } from '../../src/commands/verify-drift.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { EXAMPLE_CONFIG, apply, envFor, loadSample, query, runCli, testConfig, writeConfig } from '../harness/bisync.js';
import type { CliResult } from '../harness/bisync.js';
import { createDatabases, useFreshDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from '../executor/jobs-fixture.js';

async function verify(dbs: TestDatabases, config: ResolvedConfig | string, ...args: string[]): Promise<CliResult> {
  const file = typeof config === 'string' ? config : config.file;
  return await runCli(['verify', '--config', file, ...args], envFor(dbs));
}

async function verifyJson(dbs: TestDatabases, config: ResolvedConfig | string, ...args: string[]): Promise<{ code: number; report: VerifyReport }> {
  const result = await verify(dbs, config, '--json', ...args);
  return { code: result.code, report: JSON.parse(result.stdout) as VerifyReport };
}

function table(report: VerifyReport, name: string): TableVerifyResult {
  const found = report.tables.find((t) => t.table === name);
  if (found === undefined) throw new Error(`no table ${name} in the report`);
  return found;
}

function finding(t: TableVerifyResult, kind: Finding['kind'], database: string | null = null): Finding {
  const found = t.findings.find((f) => f.kind === kind && f.database === database);
  if (found === undefined) throw new Error(`no ${kind} finding on ${String(database)}`);
  return found;
}

const keyValues = (f: Finding, column: string): (string | null | undefined)[] => f.keys.map((k) => k[column]).sort();

/** Rows inserted, updated and deleted in a database's user tables since the statistics began. */
async function writesSoFar(url: string): Promise<number> {
  const rows = await query<{ n: string }>(url, 'SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint AS n FROM pg_stat_user_tables');
  return Number(rows[0]?.n ?? 0);
}

async function schemaExists(url: string, schema: string): Promise<boolean> {
  const rows = await query<{ n: number }>(url, 'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [schema]);
  return rows[0]?.n === 1;
}

describe('bisync verify: a pair in step', () => {
  const dbs = useFreshDatabases('verifyclean');

  it('after apply both ways, verify exits 0 and says every table is in step', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 40);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (9000, 1, 'mobile job', 'open', 'M')`);
    await apply(config, { direction: 'reverse' });

    const result = await verify(dbs, config);

    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^client\s+in step\s+3\s+3\s+3\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s+0$/m);
    expect(result.stdout).toMatch(/^job\s+in step\s+41\s+41\s+41\s/m);
    expect(result.stdout).toMatch(/In step: 2 tables compared, no drift\./);
  });

  it('the output header states the rules verify applies', async () => {
    const result = await verify(dbs, await jobsConfig(dbs));
    expect(result.stdout).toMatch(/^bisync verify: desktop \(forward source\) ↔ cloud \(forward target\)\. Nothing is written to either database\./);
    expect(result.stdout).toMatch(/Tables synced forward: every desktop row must be on cloud/);
    expect(result.stdout).toMatch(/Owned by the other side, differs: .* listed but not drift/);
    expect(result.stdout).toMatch(/Exit 1 when any table drifts/);
  });

  it('the example config on the sample dataset (15 tables, awkward text, a mapped column) is in step after apply', async () => {
    const sample = await createDatabases('verifysample');
    try {
      await loadSample(sample, 0.02);
      const config = await testConfig(EXAMPLE_CONFIG, sample);
      expect((await apply(config)).exitCode).toBe(0);

      const { code, report } = await verifyJson(sample, EXAMPLE_CONFIG);

      expect(report.tables.filter((t) => t.status !== 'in-step').map((t) => `${t.table}: ${t.error ?? t.drifted}`)).toEqual([]);
      expect(code).toBe(0);
      expect(report.tables).toHaveLength(15);
      const reminder = table(report, 'reminder');
      expect(reminder.rows.desktop).toBeGreaterThan(0);
      expect(reminder.rows.cloud).toBe(reminder.rows.desktop);
    } finally {
      await sample.drop();
    }
  });
});

describe('bisync verify: planted drift is found and named by key', () => {
  const dbs = useFreshDatabases('verifydrift');
  let config: ResolvedConfig;

  it('a row deleted on the cloud, a row changed on the desktop, an extra desktop-owned cloud row and a mobile row missing on the desktop: exit 1, each key named', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 3, 200);
    config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id = 17');
    await query(dbs.desktopUrl, `UPDATE job SET title = 'renamed on the desktop' WHERE job_id = 42`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5001, 1, 'desktop-owned, desktop lacks it', 'open', 'D')`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5002, 1, 'NULL origin: unmarked, no side claims it', 'open', NULL)`);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (7001, 2, 'created on the phone', 'open', 'M')`);

    const text = await verify(dbs, config);
    const { code, report } = await verifyJson(dbs, config);

    expect(text.code).toBe(1);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(table(report, 'client').status).toBe('in-step');
    const job = table(report, 'job');
    expect(job.status).toBe('drift');
    expect(job.drifted).toBe(5);
    expect(keyValues(finding(job, 'missing', 'cloud'), 'job_id')).toEqual(['17']);
    expect(keyValues(finding(job, 'differs'), 'job_id')).toEqual(['42']);
    expect(keyValues(finding(job, 'extra', 'cloud'), 'job_id')).toEqual(['5001']);
    expect(keyValues(finding(job, 'unmarked', 'cloud'), 'job_id')).toEqual(['5002']);
    expect(keyValues(finding(job, 'missing', 'desktop'), 'job_id')).toEqual(['7001']);
    expect(job.rows).toEqual({ desktop: 200, cloud: 202 });
    expect(job.inStep).toBe(198);
    expect(job.buckets.differing).toBeLessThanOrEqual(5);

    expect(text.stdout).toMatch(/^job\s+DRIFT\s+200\s+202\s+198\s+1\s+1\s+1\s+1\s+1\s+0\s+0\s+0$/m);
    expect(text.stdout).toMatch(/^ {2}missing on cloud \(1\): job_id=17$/m);
    expect(text.stdout).toMatch(/^ {2}differs \(1\): job_id=42$/m);
    expect(text.stdout).toMatch(/^ {2}extra on cloud \(owned by desktop, which lacks it; deletes: keep, so forward never removes it\) \(1\): job_id=5001$/m);
    expect(text.stdout).toMatch(/^ {2}unmarked on cloud \(source is NULL and desktop lacks it\): no side claims it, so forward never deletes it and reverse never sends it; set its marker \(1\): job_id=5002$/m);
    expect(text.stdout).toMatch(/^ {2}missing on desktop \(owned by cloud\) \(1\): job_id=7001$/m);
    expect(text.stdout).toMatch(/Drift: 1 of 2 tables \(5 drifted rows\)\./);
  });

  it('a sync run repairs what it can: after apply, only the extra desktop-owned row (deletes: keep) and the unmarked row remain', async () => {
    await apply(config, { mode: 'full' });

    const { code, report } = await verifyJson(dbs, config);

    expect(code).toBe(1);
    const job = table(report, 'job');
    expect(job.drifted).toBe(2);
    expect(keyValues(finding(job, 'extra', 'cloud'), 'job_id')).toEqual(['5001']);
    expect(keyValues(finding(job, 'unmarked', 'cloud'), 'job_id')).toEqual(['5002']);
    expect(finding(job, 'missing', 'cloud').count).toBe(0);
    expect(finding(job, 'missing', 'desktop').count).toBe(0);
    expect(finding(job, 'differs').count).toBe(0);
  });

  it('a protected mobile row that differs from the desktop row is reported as owned by the other side, not as drift', async () => {
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id IN (5001, 5002)');
    // Reverse brought 7001 to the desktop; an office edit there is never pushed over the phone's row.
    await query(dbs.desktopUrl, `UPDATE job SET status = 'edited in the office' WHERE job_id = 7001`);

    const text = await verify(dbs, config);
    const { code, report } = await verifyJson(dbs, config);

    expect(code).toBe(0);
    expect(text.code).toBe(0);
    const job = table(report, 'job');
    expect(job.status).toBe('in-step');
    expect(job.drifted).toBe(0);
    const protectedRows = finding(job, 'protected-differs');
    expect(protectedRows.drift).toBe(false);
    expect(keyValues(protectedRows, 'job_id')).toEqual(['7001']);
    expect(text.stdout).toMatch(/^ {2}owned by the other side \(cloud\), differs: forward never overwrites it; not drift \(1\): job_id=7001$/m);
  });

  it('more than 100 drifted rows: the first 100 keys in key order are named and all of them are counted', async () => {
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id BETWEEN 51 AND 200');

    const text = await verify(dbs, config, '--table', 'job');
    const { code, report } = await verifyJson(dbs, config, '--table', 'job');

    expect(code).toBe(1);
    const missing = finding(table(report, 'job'), 'missing', 'cloud');
    expect(missing.count).toBe(150);
    expect(missing.keys).toHaveLength(100);
    expect(missing.keys.map((k) => Number(k.job_id))).toEqual(Array.from({ length: 100 }, (_, i) => 51 + i));
    expect(text.stdout).toMatch(/^ {2}missing on cloud \(150\): job_id=51, job_id=52, (job_id=\d+, ){97}job_id=150 … and 50 more \(the first 100 by key are listed\)$/m);
    expect(text.stdout).toMatch(/Drift: 1 of 1 table \(150 drifted rows\)\./);
  });
});

describe('bisync verify: which rows both sides should hold', () => {
  const dbs = useFreshDatabases('verifyrules');

  it('cloud rows of a forward-only table that the phone owns are not synced, so not drift; desktop-owned extras are', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    const file = writeConfig(`
version: 1
databases:
  desktop: { url: "\${DESKTOP_DATABASE_URL}" }
  cloud: { url: "\${CLOUD_DATABASE_URL}" }
forward: { from: desktop, to: cloud }
defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
  - name: client
    primary_key: [client_id]
    direction: forward
`);
    const config = await testConfig(file, dbs);
    await apply(config);
    await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (900, 'phone client', 'M'), (901, 'another app', 'X')`);

    const clean = await verifyJson(dbs, file);

    expect(clean.code).toBe(0);
    const client = table(clean.report, 'client');
    expect(finding(client, 'not-synced').count).toBe(2);
    expect(client.drifted).toBe(0);

    await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (902, 'desktop-owned stray', 'D')`);
    const drift = await verifyJson(dbs, file);
    expect(drift.code).toBe(1);
    expect(keyValues(finding(table(drift.report, 'client'), 'extra', 'cloud'), 'client_id')).toEqual(['902']);
  });
});

describe('bisync verify: column mappings and type differences', () => {
  const dbs = useFreshDatabases('verifytypes');
  let file = '';

  it('remdate→reminder_date, varchar vs text, integer vs bigint, char(n) vs text, numeric(10,2) vs numeric, timestamp vs timestamptz compare equal when the values are', async () => {
    await query(
      dbs.desktopUrl,
      `CREATE TABLE mbreminder (rem_id integer PRIMARY KEY, remdate date NOT NULL, note varchar(40), qty integer, code char(4),
                                amount numeric(10,2), due timestamp)`,
    );
    await query(
      dbs.cloudUrl,
      `CREATE TABLE reminder (rem_id bigint PRIMARY KEY, reminder_date date NOT NULL, note text, qty bigint, code text,
                              amount numeric, due timestamptz, source char(1), updated_at timestamptz NOT NULL DEFAULT now())`,
    );
    await query(
      dbs.desktopUrl,
      `INSERT INTO mbreminder SELECT i, date '2026-01-01' + i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'note, "' || i || E'"\\t' END, i * 1000,
              CASE WHEN i % 3 = 0 THEN 'ab' ELSE 'wxyz' END, i + 0.5, timestamp '2026-03-01 10:00:00.123456' + i * interval '1 hour'
         FROM generate_series(1, 60) i`,
    );
    file = writeConfig(`
version: 1
databases:
  desktop: { url: "\${DESKTOP_DATABASE_URL}" }
  cloud: { url: "\${CLOUD_DATABASE_URL}" }
forward: { from: desktop, to: cloud }
defaults:
  origin: { column: source, forward: D, reverse: M }
  timestamps: { cloud: [updated_at] }
tables:
  - name: reminder
    desktop: { table: mbreminder }
    primary_key: [rem_id]
    direction: both
    columns:
      - rem_id
      - { desktop: remdate, cloud: reminder_date }
      - note
      - qty
      - code
      - amount
      - due
`);
    const config = await testConfig(file, dbs);
    await apply(config);
    // A phone row travels the other way: its values are padded and rounded by the desktop's types.
    await query(dbs.cloudUrl, `INSERT INTO reminder (rem_id, reminder_date, note, qty, code, amount, due, source)
                               VALUES (500, date '2026-06-01', 'from the phone', 7, 'p', 2.505, '2026-06-01 08:00:00+00', 'M')`);
    await apply(config, { direction: 'reverse' });

    const { code, report } = await verifyJson(dbs, file);

    const reminder = table(report, 'reminder');
    expect(reminder.error).toBeUndefined();
    expect(reminder.findings.filter((f) => f.count > 0)).toEqual([]);
    expect(code).toBe(0);
    expect(reminder.rows).toEqual({ desktop: 61, cloud: 61 });
    expect(reminder.relations).toEqual({ desktop: 'public.mbreminder', cloud: 'public.reminder' });
  });

  it('a changed value in the mapped column is drift, named by key', async () => {
    await query(dbs.desktopUrl, `UPDATE mbreminder SET remdate = remdate + 1 WHERE rem_id = 33`);
    await query(dbs.cloudUrl, `UPDATE reminder SET qty = qty + 1 WHERE rem_id = 34`);

    const { code, report } = await verifyJson(dbs, file);

    expect(code).toBe(1);
    expect(keyValues(finding(table(report, 'reminder'), 'differs'), 'rem_id')).toEqual(['33', '34']);
  });
});

describe('bisync verify: a table that cannot be compared', () => {
  const dbs = useFreshDatabases('verifyfailed');

  it('is reported as failed with the database error, exit 1, and the other tables are still compared', async () => {
    await query(dbs.desktopUrl, 'CREATE TABLE amount (id integer PRIMARY KEY, n numeric); CREATE TABLE note (id integer PRIMARY KEY, body text)');
    await query(dbs.cloudUrl, 'CREATE TABLE amount (id integer PRIMARY KEY, n integer); CREATE TABLE note (id integer PRIMARY KEY, body text)');
    // 1e12 does not fit the cloud's integer: the sync rejects that row, and verify cannot cast it either.
    await query(dbs.desktopUrl, `INSERT INTO amount VALUES (1, 5), (2, 1e12); INSERT INTO note VALUES (1, 'a'), (2, 'b')`);
    const file = writeConfig(`
version: 1
databases:
  desktop: { url: "\${DESKTOP_DATABASE_URL}" }
  cloud: { url: "\${CLOUD_DATABASE_URL}" }
forward: { from: desktop, to: cloud }
defaults: { origin: false }
tables:
  - { name: amount, primary_key: [id], direction: forward }
  - { name: note, primary_key: [id], direction: forward }
`);
    await apply(await testConfig(file, dbs));

    const text = await verify(dbs, file);
    const { code, report } = await verifyJson(dbs, file);

    expect(code).toBe(1);
    expect(text.code).toBe(1);
    expect(table(report, 'amount')).toMatchObject({ status: 'failed', error: expect.stringMatching(/integer out of range/) });
    expect(table(report, 'note').status).toBe('in-step');
    expect(text.stdout).toMatch(/^amount\s+FAILED\s+-/m);
    expect(text.stdout).toMatch(/^amount: could not be compared: .*integer out of range/m);
    expect(text.stdout).toMatch(/^note\s+in step/m);
  });
});

describe('bisync verify: hostile identifiers', () => {
  const dbs = useFreshDatabases('verifyhostile');

  it('schema, table and column names with quotes, spaces, dots and semicolons are quoted: drift is found and nothing is dropped', async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      await query(url, `CREATE SCHEMA "we""ird; --"`);
      await query(url, `CREATE TABLE "we""ird; --"."tab.le" ("Key""Col" integer PRIMARY KEY, "col with space" text, "x'); DROP TABLE victim; --" text)`);
      await query(url, `CREATE TABLE victim (id integer)`);
    }
    await query(dbs.cloudUrl, `ALTER TABLE "we""ird; --"."tab.le" ADD COLUMN "Sour""ce" text`);
    await query(dbs.desktopUrl, `INSERT INTO "we""ird; --"."tab.le" SELECT i, 'v ' || i, 'w' FROM generate_series(1, 20) i`);
    const file = writeConfig(`
version: 1
databases:
  desktop: { url: "\${DESKTOP_DATABASE_URL}" }
  cloud: { url: "\${CLOUD_DATABASE_URL}" }
forward: { from: desktop, to: cloud }
defaults:
  origin: { column: 'Sour"ce', forward: D, reverse: M }
tables:
  - name: "odd's table"
    desktop: { table: 'we"ird; --.tab.le' }
    cloud: { table: 'we"ird; --.tab.le' }
    primary_key: ['Key"Col']
    direction: forward
`);
    const config = await testConfig(file, dbs);
    const applied = await apply(config);
    expect(applied.steps.map((s) => s.error ?? s.status)).toEqual(['succeeded']);
    await query(dbs.desktopUrl, `UPDATE "we""ird; --"."tab.le" SET "col with space" = 'changed' WHERE "Key""Col" = 7`);

    const { code, report } = await verifyJson(dbs, file);

    expect(code).toBe(1);
    expect(finding(table(report, "odd's table"), 'differs').keys).toEqual([{ 'Key"Col': '7' }]);
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      expect(await query(url, 'SELECT count(*)::int AS n FROM victim')).toEqual([{ n: 0 }]);
    }
  });
});

describe('bisync verify never writes', () => {
  const dbs = useFreshDatabases('verifyreadonly');

  it('on fresh databases it finds the drift and creates nothing: no bisync schema on either side', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 10);
    const config = await jobsConfig(dbs);

    const { code, report } = await verifyJson(dbs, config);

    expect(code).toBe(1);
    expect(finding(table(report, 'job'), 'missing', 'cloud').count).toBe(10);
    expect(await schemaExists(dbs.desktopUrl, 'bisync')).toBe(false);
    expect(await schemaExists(dbs.cloudUrl, 'bisync')).toBe(false);
  });

  it('inserts, updates and deletes in user tables stay the same on both sides across a verify that finds drift', async () => {
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id = 3');
    await query(dbs.desktopUrl, `UPDATE client SET name = 'renamed' WHERE client_id = 1`);
    const before = { desktop: await writesSoFar(dbs.desktopUrl), cloud: await writesSoFar(dbs.cloudUrl) };
    expect(before.cloud).toBeGreaterThan(0);

    const result = await verify(dbs, config);

    expect(result.code).toBe(1);
    expect({ desktop: await writesSoFar(dbs.desktopUrl), cloud: await writesSoFar(dbs.cloudUrl) }).toEqual(before);
  });
});

describe('bisync verify: options and output', () => {
  const dbs = useFreshDatabases('verifyoptions');

  it('--table compares only the named tables', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 10);
    const config = await jobsConfig(dbs);
    await apply(config);
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id = 4');

    const clientOnly = await verify(dbs, config, '--table', 'client');
    const { report } = await verifyJson(dbs, config, '--table', 'job');

    expect(clientOnly.code).toBe(0);
    expect(clientOnly.stdout).toMatch(/^client\s+in step/m);
    expect(clientOnly.stdout).not.toMatch(/^job\s/m);
    expect(report.tables.map((t) => t.table)).toEqual(['job']);
  });

  it('--table with an unknown name is a usage error (exit 2) with a suggestion', async () => {
    const result = await verify(dbs, await jobsConfig(dbs), '--table', 'jobs');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--table names "jobs", not in/);
    expect(result.stderr).toMatch(/hint: .*job/);
  });

  it('--json prints one JSON document: ok, the databases, the rules, and per table rows, buckets and findings with keys', async () => {
    const result = await verify(dbs, await jobsConfig(dbs), '--json');

    expect(result.code).toBe(1);
    const doc = JSON.parse(result.stdout) as VerifyReport;
    expect(doc).toMatchObject({ ok: false, from: 'desktop', to: 'cloud', exitCode: 1 });
    expect(doc.rules.length).toBeGreaterThan(3);
    expect(doc.tables.map((t) => t.table)).toEqual(['client', 'job']);
    const job = table(doc, 'job');
    expect(job).toMatchObject({
      status: 'drift',
      directions: ['forward', 'reverse'],
      deletes: 'keep',
      origin: { column: 'source', forward: 'D', reverse: 'M' },
      relations: { desktop: 'public.job', cloud: 'public.job' },
      rows: { desktop: 10, cloud: 9 },
      inStep: 9,
      drifted: 1,
    });
    expect(job.buckets.compared).toBe(10);
    expect(job.findings.map((f) => [f.kind, f.database, f.drift])).toEqual([
      ['missing', 'cloud', true],
      ['extra', 'cloud', true],
      ['unmarked', 'cloud', true],
      ['missing', 'desktop', true],
      ['differs', null, true],
      ['cursor-missed', 'desktop', true],
      ['cursor-missed', 'cloud', true],
      ['protected-differs', null, false],
      ['not-synced', null, false],
    ]);
    expect(finding(job, 'missing', 'cloud')).toMatchObject({ count: 1, keys: [{ job_id: '4' }] });
  });
});
