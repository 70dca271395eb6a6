/**
 * SPEC §8, the run-level probe: before the steps, apply asks every eligible step, in one
 * transaction per database, whether it would find nothing to do (checksum steps: the sum of the
 * bucket checksums per database; incremental steps: the rows their read would take, found on the
 * target as they are). Such steps are not run: reported succeeded with `notRun`, one row in runs
 * each, no state changed. Anything else runs exactly as before.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { planSql } from '../../src/cli/plan-output.js';
import { planCommand } from '../../src/commands/plan.js';
import type { ApplyReport } from '../../src/commands/apply.js';
import type { StepResult } from '../../src/executor/run-step.js';
import { apply, configHead, query, testConfig, writeConfig } from '../harness/bisync.js';
import { LinkProxy } from '../proxy/link-proxy.js';
import { FaultProxy } from '../reliability/proxy-pg.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { ThreeWayPair, TOUCH_FUNCTION } from '../three-way/three-way-fixture.js';
import type { PairOptions } from '../three-way/three-way-fixture.js';
import { createJobsSchema, jobsConfig, jobsConfigFile, seedDesktop } from './jobs-fixture.js';
import type { JobsConfigOptions } from './jobs-fixture.js';

const stepOf = (report: ApplyReport, table: string, direction: 'forward' | 'reverse'): StepResult => {
  const found = report.steps.find((s) => s.table === table && s.direction === direction);
  if (found === undefined) throw new Error(`no ${table} ${direction} step`);
  return found;
};

/** Every row's xmin on both databases (bisync's state included): any write changes one. */
async function versions(dbs: TestDatabases): Promise<string[]> {
  const out: string[] = [];
  for (const [name, url] of [['desktop', dbs.desktopUrl], ['cloud', dbs.cloudUrl]] as const) {
    for (const table of ['client', 'job', 'bisync.state', 'bisync.base', 'bisync.rejects', 'bisync.conflicts']) {
      const rows = await query<{ v: string }>(url, `SELECT string_agg(xmin::text, ',' ORDER BY xmin::text) AS v FROM ${table}`);
      out.push(`${name} ${table}: ${rows[0]?.v ?? ''}`);
    }
  }
  return out;
}

/**
 * The jobs slice synced once each way, with phone jobs (source M) on the cloud: every step has run
 * before (forward compares by checksum, reverse reads its lookback window from the watermark).
 */
async function synced(dbs: TestDatabases, options: JobsConfigOptions = {}): Promise<void> {
  await createJobsSchema(dbs);
  await seedDesktop(dbs, 5, 300);
  const config = await jobsConfig(dbs, options);
  await apply(config, { direction: 'forward' });
  await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) SELECT i, 'phone client ' || i, 'M' FROM generate_series(501, 503) i`);
  await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) SELECT i, 1, 'phone ' || i, 'open', 'M' FROM generate_series(5001, 5010) i`);
  await apply(config, { direction: 'both' });
}

/** The job reverse step's watermark on the desktop, as UTC text. */
async function jobReverseWatermark(dbs: TestDatabases): Promise<string> {
  return (await query<{ w: string }>(dbs.desktopUrl, `SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS w FROM bisync.state WHERE table_name = 'job' AND direction = 'reverse'`))[0]?.w ?? '';
}

describe('probe: a run with nothing to do runs no step', () => {
  const dbs = useFreshDatabases('probe_nochange');

  it('a no-change run skips every eligible step, writes nothing but one runs row per step, and costs the cloud one round trip', async () => {
    await synced(dbs);
    const config = await jobsConfig(dbs);
    const before = await versions(dbs);
    const runsBefore = await Promise.all([dbs.desktopUrl, dbs.cloudUrl].map(async (u) => (await query<{ n: number }>(u, 'SELECT count(*)::int AS n FROM bisync.runs'))[0]?.n ?? 0));

    const report = await apply(config, { direction: 'both' });
    expect(report.exitCode).toBe(0);
    expect(report.steps).toHaveLength(4);
    for (const s of report.steps) {
      expect(s, `${s.table} ${s.direction}`).toMatchObject({ status: 'succeeded', notRun: 'nothing to do', read: 0, inserted: 0, updated: 0, deleted: 0, roundTrips: 0 });
      expect(s.reason).toMatch(/nothing to do: the probe found/);
    }
    expect(stepOf(report, 'job', 'forward').unchanged).toBe(300);
    expect(stepOf(report, 'job', 'forward').protected).toBe(10);
    // The probe: one round trip to the cloud for every step's probe, then one for the run rows.
    expect(report.probe).toMatchObject({ probed: 4, skipped: 4 });
    expect(report.probe?.roundTripsByDatabase?.cloud).toBe(1);
    expect(report.probe?.runRows?.roundTripsByDatabase?.cloud).toBe(1);

    const after = await versions(dbs);
    expect(after.filter((line) => !line.includes('bisync.runs'))).toEqual(before);
    const runs = await Promise.all(
      [dbs.desktopUrl, dbs.cloudUrl].map(async (u) => await query<{ table_name: string; direction: string; status: string; read_rows: number; reason: string }>(u, 'SELECT table_name, direction, status, read_rows, reason FROM bisync.runs WHERE run_id = $1 ORDER BY 1, 2', [report.runId])),
    );
    expect(runs[1]?.map((r) => `${r.table_name} ${r.direction} ${r.status} ${r.read_rows}`)).toEqual(['client forward succeeded 0', 'job forward succeeded 0']);
    expect(runs[0]?.map((r) => `${r.table_name} ${r.direction} ${r.status} ${r.read_rows}`)).toEqual(['client reverse succeeded 0', 'job reverse succeeded 0']);
    for (const r of [...(runs[0] ?? []), ...(runs[1] ?? [])]) expect(r.reason).toMatch(/^probe: .*nothing to do, not run$/);
    const runsAfter = await Promise.all([dbs.desktopUrl, dbs.cloudUrl].map(async (u) => (await query<{ n: number }>(u, 'SELECT count(*)::int AS n FROM bisync.runs'))[0]?.n ?? 0));
    expect(runsAfter).toEqual([(runsBefore[0] ?? 0) + 2, (runsBefore[1] ?? 0) + 2]);
  });

  it('a no-change run costs the cloud at most twelve round trips in all: connecting, the catalog read, the probe, the run rows and closing (no bootstrap, no step)', async () => {
    // A little latency, so that statements sent together reach the link before any answer does (as over a WAN).
    const link = await LinkProxy.start(dbs.cloudUrl, { rttMs: 20, bitsPerSecond: Infinity });
    try {
      const config = await testConfig(jobsConfigFile(), { ...dbs, cloudUrl: link.url(dbs.cloudUrl) });
      link.resetStats();
      const report = await apply(config, { direction: 'both', concurrency: 2 });
      expect(report.steps.every((s) => s.notRun === 'nothing to do')).toBe(true);
      // Counted by the link (each turn from bisync to the server): connecting, the catalog read (open,
      // reads, state reads, commit), the probe, the run rows and closing: 11, or 12 when the answers to
      // the catalog read's state checks arrive in two pieces; 15 or more with the bootstrap.
      expect(link.current.roundTrips).toBeLessThanOrEqual(12);
      expect(link.current.connections).toBe(1);
    } finally {
      await link.stop();
    }
  });

  it('plan prints each eligible step\'s probe, and says the step\'s statements do not run when it finds nothing to do', async () => {
    const config = await jobsConfig(dbs);
    const plan = await planCommand(config, { direction: 'both', tables: [], mode: 'auto' });
    const job = plan.steps.find((s) => s.table === 'job' && s.direction === 'forward');
    const reverse = plan.steps.find((s) => s.table === 'job' && s.direction === 'reverse');
    expect(job?.probeKind).toBe('checksum');
    expect(job?.probe?.map((s) => `${s.side} ${s.kind}`)).toEqual(['target settings', 'target probe-lock', 'target probe-checksums', 'source settings', 'source probe-checksums', 'target record-run']);
    expect(reverse?.probeKind).toBe('window');
    expect(reverse?.probe?.map((s) => `${s.side} ${s.kind}`)).toEqual(['source settings', 'source probe-window', 'target settings', 'target probe-lock', 'target probe-rows', 'target record-run']);
    const sql = planSql(plan);
    expect(sql).toContain('-- When the probe finds nothing to do, the statements below do not run.');
    expect(sql).toContain('FOR UPDATE SKIP LOCKED');
    // Skipping a step is not running it with `--mode full`: such a plan probes nothing.
    const full = await planCommand(config, { direction: 'both', tables: [], mode: 'full' });
    expect(full.steps.filter((s) => s.probe !== undefined)).toEqual([]);
  });
});

describe('probe: a checksum step with something to do runs', () => {
  const dbs = useFreshDatabases('probe_checksum');

  it('a checksum step runs when one desktop row differs, one is inserted, and one is deleted (the mirror delete happens)', async () => {
    await synced(dbs, { jobExtra: '    deletes: mirror' });
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror' });
    await query(dbs.desktopUrl, `UPDATE job SET title = 'edited' WHERE job_id = 17`);
    const edited = stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward');
    expect(edited).toMatchObject({ status: 'succeeded', updated: 1 });
    expect(edited.notRun).toBeUndefined();

    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (9001, 1, 'new', 'open')`);
    expect(stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward')).toMatchObject({ status: 'succeeded', inserted: 1 });

    await query(dbs.desktopUrl, `DELETE FROM job WHERE job_id = 18`);
    const deleted = stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward');
    expect(deleted).toMatchObject({ status: 'succeeded', deleted: 1 });
    expect(await query(dbs.cloudUrl, 'SELECT job_id FROM job WHERE job_id = 18')).toEqual([]);
    // And with nothing left to do, skipped again.
    expect(stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward').notRun).toBe('nothing to do');
  });

  it('a step with pending rejects runs even when nothing changed', async () => {
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror' });
    await query(dbs.cloudUrl, `ALTER TABLE job ADD CONSTRAINT no_bad_title CHECK (title <> 'bad')`);
    await query(dbs.desktopUrl, `UPDATE job SET title = 'bad' WHERE job_id = 40`);
    expect(stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward')).toMatchObject({ status: 'succeeded', rejected: 1 });
    const again = stepOf(await apply(config, { direction: 'forward' }), 'job', 'forward');
    expect(again.notRun).toBeUndefined();
    expect(again).toMatchObject({ status: 'succeeded', rejected: 1 });
    expect(again.read).toBeGreaterThan(0);
    await query(dbs.cloudUrl, 'ALTER TABLE job DROP CONSTRAINT no_bad_title');
  });

  it('a step whose lock another session holds gets exit 3 even with nothing changed', async () => {
    const config = await jobsConfig(dbs, { jobExtra: '    deletes: mirror' });
    await apply(config, { direction: 'forward' });
    const holder = new pg.Client({ connectionString: dbs.cloudUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM bisync.state WHERE table_name = 'job' AND direction = 'forward' FOR UPDATE`);
      const report = await apply(config, { direction: 'forward' });
      expect(report.exitCode).toBe(3);
      expect(stepOf(report, 'job', 'forward').status).toBe('locked');
      expect(stepOf(report, 'client', 'forward').notRun).toBe('nothing to do');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  });
});

describe('probe: an incremental step with something to do runs', () => {
  const dbs = useFreshDatabases('probe_window');

  const watermark = async (): Promise<string> => await jobReverseWatermark(dbs);

  it('a reverse cursor step runs when a row in the lookback window changed, even committed late with a cursor value older than the watermark', async () => {
    await synced(dbs);
    const config = await jobsConfig(dbs);
    expect(stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse').notRun).toBe('nothing to do');
    const mark = await watermark();
    // Inside the 5 s lookback, older than the watermark: only the row comparison can see it.
    await query(dbs.cloudUrl, `UPDATE job SET title = 'late phone edit', updated_at = $1::timestamptz - interval '2 seconds', created_at = $1::timestamptz - interval '3 seconds' WHERE job_id = 5003`, [mark]);
    const step = stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse');
    expect(step.notRun).toBeUndefined();
    expect(step).toMatchObject({ status: 'succeeded', updated: 1 });
    expect((await query(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 5003'))[0]).toEqual({ title: 'late phone edit' });
    expect(await watermark()).toBe(mark);
  });

  it('a reverse cursor step runs when a new row arrives', async () => {
    const config = await jobsConfig(dbs);
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5100, 2, 'new phone job', 'open', 'M')`);
    const step = stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse');
    expect(step.notRun).toBeUndefined();
    expect(step).toMatchObject({ status: 'succeeded', inserted: 1 });
    expect(stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse').notRun).toBe('nothing to do');
  });
});

describe('probe: an xmin step runs after a desktop edit', () => {
  const dbs = useFreshDatabases('probe_xmin');

  it('an xmin step runs after a desktop edit, and the probe still costs the cloud one round trip', async () => {
    await synced(dbs, { desktopXmin: true });
    const config = await jobsConfig(dbs, { desktopXmin: true });
    await apply(config, { direction: 'forward' });
    const quiet = await apply(config, { direction: 'both' });
    expect(stepOf(quiet, 'job', 'forward').notRun).toBe('nothing to do');
    expect(stepOf(quiet, 'job', 'forward').mode).toBe('incremental');
    expect(quiet.probe?.roundTripsByDatabase?.cloud).toBe(1);

    await query(dbs.desktopUrl, `UPDATE job SET status = 'done' WHERE job_id = 33`);
    const report = await apply(config, { direction: 'both' });
    const step = stepOf(report, 'job', 'forward');
    expect(step.notRun).toBeUndefined();
    expect(step).toMatchObject({ status: 'succeeded', mode: 'incremental', updated: 1 });
    expect((await query(dbs.cloudUrl, 'SELECT status FROM job WHERE job_id = 33'))[0]).toEqual({ status: 'done' });
    expect(report.probe?.roundTripsByDatabase?.cloud).toBe(1);
  });
});

describe('probe: an edits: both table', () => {
  const pairs: ThreeWayPair[] = [];
  afterAll(async () => {
    for (const pair of pairs) await pair.drop();
  });
  /** A pair with desktop jobs 1..n, synced both ways twice (both copies of the base agree). */
  const syncedPair = async (label: string, n: number, options: PairOptions = {}): Promise<ThreeWayPair> => {
    const pair = await ThreeWayPair.create(label, options);
    pairs.push(pair);
    await pair.sql('desktop', `INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, $1::int) AS i`, [n]);
    await pair.apply('both');
    await pair.apply('both');
    return pair;
  };

  /**
   * apply both ways through a proxy in front of each database that cuts the connection at the second
   * statement it sees that says 'not settled on' (only the probe's sum of an edits: both table does):
   * the probe then fails and every step runs. Every step skipped: each database computed its sum once.
   */
  const applyCountingSums = async (pair: ThreeWayPair): Promise<{ report: ApplyReport; cuts: unknown[] }> => {
    const proxies = { desktop: await FaultProxy.start(pair.url('desktop')), cloud: await FaultProxy.start(pair.url('cloud')) };
    try {
      for (const proxy of Object.values(proxies)) proxy.arm({ trigger: { kind: 'sql', match: /'not settled on '/ }, nth: 2, times: Infinity });
      const config = await testConfig(pair.config.file, { desktopUrl: proxies.desktop.url(pair.url('desktop')), cloudUrl: proxies.cloud.url(pair.url('cloud')) });
      const report = await apply(config, { direction: 'both' });
      return { report, cuts: [...proxies.desktop.cuts, ...proxies.cloud.cuts] };
    } finally {
      await proxies.desktop.stop();
      await proxies.cloud.stop();
    }
  };

  it('an edits: both pair runs when one side edited, and is skipped both ways when nothing changed', async () => {
    const pair = await syncedPair('probe_both', 200);
    const quiet = await pair.apply('both');
    for (const s of quiet.steps) expect(s.notRun, `${s.direction}`).toBe('nothing to do');

    await pair.sql('cloud', `UPDATE job SET status = 'phone edit' WHERE job_id = 77`);
    const report = await pair.apply('both');
    expect(stepOf(report, 'job', 'reverse')).toMatchObject({ status: 'succeeded', updated: 1 });
    expect(stepOf(report, 'job', 'reverse').notRun).toBeUndefined();
    expect(await pair.job('desktop', 77)).toEqual({ job_id: 77, title: 'job 77', status: 'phone edit' });

    await pair.sql('desktop', `UPDATE job SET title = 'office edit' WHERE job_id = 78`);
    const forward = await pair.apply('both');
    expect(stepOf(forward, 'job', 'forward')).toMatchObject({ status: 'succeeded', updated: 1 });
    // Forward wrote both copies of the base: reverse runs after it, as without the probe.
    expect(stepOf(forward, 'job', 'reverse').notRun).toBeUndefined();
    expect(await pair.job('cloud', 78)).toEqual({ job_id: 78, title: 'office edit', status: 'Open' });
    for (const s of (await pair.apply('both')).steps) expect(s.notRun, `${s.direction} once both agree`).toBe('nothing to do');
  });

  it('a run that probes both directions of an edits: both table sums each database\'s settled keys once, not once per direction', async () => {
    const { report, cuts } = await applyCountingSums(await syncedPair('probe_both_once', 50));
    expect(report.probe?.error).toBeUndefined();
    for (const s of report.steps) expect(s.notRun, `${s.direction}`).toBe('nothing to do');
    expect(cuts).toEqual([]);
  });

  it('a run that probes both directions of an incremental edits: both table sums each database\'s settled keys once too (the reverse step takes the forward step\'s conditional answers)', async () => {
    const { report, cuts } = await applyCountingSums(await syncedPair('probe_both_once_cursor', 50, { cursors: true }));
    expect(report.probe?.error).toBeUndefined();
    for (const s of report.steps) {
      expect(s.mode, s.direction).toBe('incremental');
      expect(s.notRun, s.direction).toBe('nothing to do');
    }
    expect(cuts).toEqual([]);
  });

  it('an incremental edits: both reverse step whose read takes rows past its watermark runs, though its sums (the forward step\'s answers) are equal', async () => {
    const pair = await syncedPair('probe_both_rev_window', 50, { cursors: true });
    const mark = async (): Promise<unknown> => (await pair.sql('desktop', `SELECT watermark FROM bisync.state WHERE table_name = 'job' AND direction = 'reverse'`))[0]?.watermark;
    const before = await mark();
    // Every key settled alike on both sides, but the reverse step's watermark an hour back: its read
    // takes rows past it and would move it on, so it runs; forward has nothing to do.
    await pair.sql('desktop', `UPDATE bisync.state SET watermark = watermark - interval '1 hour' WHERE table_name = 'job' AND direction = 'reverse'`);
    const report = await pair.apply('both');
    expect(stepOf(report, 'job', 'forward').notRun).toBe('nothing to do');
    expect(stepOf(report, 'job', 'reverse').notRun).toBeUndefined();
    expect(await mark()).toEqual(before);
  });

  it('an edits: both reverse step with nothing to do still exits 3 while another run holds the forward step\'s row on the cloud (the pair lock)', async () => {
    const pair = await syncedPair('probe_pairlock', 20);
    for (const s of (await pair.apply('reverse')).steps) expect(s.notRun, 'nothing to do').toBe('nothing to do');
    const holder = new pg.Client({ connectionString: pair.url('cloud') });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM bisync.state WHERE table_name = 'job' AND direction = 'forward' FOR UPDATE`);
      const report = await pair.apply('reverse');
      expect(report.exitCode).toBe(3);
      expect(stepOf(report, 'job', 'reverse')).toMatchObject({ status: 'locked' });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  });

  it('an incremental edits: both step is skipped when every key is settled alike on both sides, and runs for an edit the window holds', async () => {
    const pair = await ThreeWayPair.create('probe_both_cursor', { cursors: true });
    pairs.push(pair);
    await pair.sql('desktop', `INSERT INTO job (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 200) AS i`);
    await pair.apply('both');
    await pair.apply('both');
    const quiet = await pair.apply('both');
    for (const s of quiet.steps) {
      expect(s.mode, s.direction).toBe('incremental');
      expect(s.notRun, s.direction).toBe('nothing to do');
    }
    // An edit with a cursor value inside the lookback but not past the watermark: only the bucket
    // checksums can see it.
    const [mark] = await pair.sql('desktop', `SELECT watermark::text AS w FROM bisync.state WHERE table_name = 'job' AND direction = 'reverse'`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone edit', updated_at = $1::timestamptz - interval '1 second' WHERE job_id = 7`, [mark?.w]);
    const report = await pair.apply('both');
    expect(stepOf(report, 'job', 'reverse').notRun).toBeUndefined();
    expect(stepOf(report, 'job', 'reverse')).toMatchObject({ status: 'succeeded', updated: 1 });
    expect(await pair.job('desktop', 7)).toEqual({ job_id: 7, title: 'job 7', status: 'phone edit' });
  });
});

describe('probe: several incremental edits: both tables', () => {
  const dbs = useFreshDatabases('probe_two_tables');

  it('an edit to one incremental edits: both table does not make the probe run another one that has nothing to do (each step\'s digest reads its own window\'s answer)', async () => {
    for (const [url, origin] of [[dbs.desktopUrl, ''], [dbs.cloudUrl, ', source char(1)']] as const) {
      await withClient(url, async (c) => {
        await c.query(TOUCH_FUNCTION);
        for (const t of ['job', 'job2']) {
          await c.query(`CREATE TABLE ${t} (job_id integer PRIMARY KEY, title text NOT NULL, status text${origin}, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE TRIGGER touch BEFORE UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION touch();`);
        }
      });
    }
    const table = (t: string): string => `
  - name: ${t}
    primary_key: [job_id]
    direction: both
    origin: { column: source, forward: D, reverse: M }
    edits: both
    timestamps: { desktop: [updated_at], cloud: [updated_at] }`;
    const config = await testConfig(writeConfig(`\n${configHead()}tables:${table('job')}${table('job2')}\n`), dbs);
    for (const t of ['job', 'job2']) await query(dbs.desktopUrl, `INSERT INTO ${t} (job_id, title, status) SELECT i, 'job ' || i, 'Open' FROM generate_series(1, 50) AS i`);
    await apply(config, { direction: 'both' });
    await apply(config, { direction: 'both' });
    for (const s of (await apply(config, { direction: 'both' })).steps) expect(s.notRun, `${s.table} ${s.direction}`).toBe('nothing to do');

    // The probe sends every desktop window before any desktop digest: the later table's window must
    // not answer for the earlier table's digest, nor the earlier's for the later's.
    for (const [edited, other] of [['job2', 'job'], ['job', 'job2']] as const) {
      await query(dbs.desktopUrl, `UPDATE ${edited} SET title = 'office edit' WHERE job_id = 7`);
      const report = await apply(config, { direction: 'both' });
      expect(report.probe?.error).toBeUndefined();
      expect(stepOf(report, edited, 'forward')).toMatchObject({ status: 'succeeded', updated: 1 });
      for (const direction of ['forward', 'reverse'] as const) expect(stepOf(report, other, direction).notRun, `${other} ${direction}`).toBe('nothing to do');
      expect((await query<{ title: string }>(dbs.cloudUrl, `SELECT title FROM ${edited} WHERE job_id = 7`))[0]?.title).toBe('office edit');
      await apply(config, { direction: 'both' });
    }
  });
});

describe('probe: a skip leaves the watermark where the step would leave it', () => {
  const dbs = useFreshDatabases('probe_lower');

  const watermark = async (): Promise<string> => await jobReverseWatermark(dbs);

  it('a step whose read would lower its watermark (the newest rows it read last time are gone from its window) runs, so a row committed later within the lookback of that watermark is read', async () => {
    await synced(dbs);
    const config = await jobsConfig(dbs);
    await apply(config, { direction: 'reverse' });
    const mark = await watermark();
    // The rows that set the watermark leave the window (their cursors rewritten to long ago, data
    // unchanged); job 5001 stays inside it, 1 s behind the watermark: the step reads it and moves the
    // watermark back to it (the newest cursor value read).
    await query(dbs.cloudUrl, `UPDATE job SET updated_at = $1::timestamptz - interval '1 day', created_at = $1::timestamptz - interval '1 day' WHERE source = 'M' AND job_id <> 5001`, [mark]);
    await query(dbs.cloudUrl, `UPDATE job SET updated_at = $1::timestamptz - interval '1 second', created_at = $1::timestamptz - interval '1 second' WHERE job_id = 5001`, [mark]);
    const step = stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse');
    expect(step.notRun).toBeUndefined();
    expect(step).toMatchObject({ status: 'succeeded', read: 1, unchanged: 1 });
    const lowered = await watermark();
    expect(Date.parse(lowered)).toBe(Date.parse(mark) - 1000);
    // A phone row committed now with a cursor 5.5 s behind the old watermark: inside the lookback of
    // the one the step saved, outside that of the old one.
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, updated_at, created_at) VALUES (5200, 2, 'late phone job', 'open', 'M', $1::timestamptz - interval '5.5 seconds', $1::timestamptz - interval '5.5 seconds')`, [mark]);
    expect(stepOf(await apply(config, { direction: 'reverse' }), 'job', 'reverse')).toMatchObject({ status: 'succeeded', inserted: 1 });
    expect(await query(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 5200')).toEqual([{ title: 'late phone job' }]);
  });
});
