import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { planSql, planSummary } from '../../src/cli/plan-output.js';
import { planCommand } from '../../src/commands/plan.js';
import { statusCommand } from '../../src/commands/status.js';
import { validateLive } from '../../src/commands/validate.js';
import { apply, query } from '../harness/bisync.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfig, seedDesktop } from './jobs-fixture.js';

/**
 * Issue 13, item 3: a least-privilege role (no pg_read_all_stats) sees other roles' sessions in
 * pg_stat_activity without their transaction start, so the late-commit clamp cannot read it. The
 * phone writes as another role (the app's). pg_locks, readable by every role, still shows that a
 * transaction holds uncommitted writes to the table: the watermark then stays where it is.
 */

const ROLE = 'bisync_no_stats';
const PASSWORD = 'no-stats-pw';

/** The databases as the least-privilege role reaches them. */
async function asPlainRole(dbs: TestDatabases): Promise<TestDatabases> {
  await query(dbs.desktopUrl, `DO $$ BEGIN CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  const out: Record<string, string> = {};
  for (const [key, admin] of Object.entries({ desktopUrl: dbs.desktopUrl, cloudUrl: dbs.cloudUrl })) {
    const url = new URL(admin);
    const database = decodeURIComponent(url.pathname.slice(1));
    await query(admin, `GRANT CONNECT, CREATE ON DATABASE ${pg.escapeIdentifier(database)} TO ${ROLE}`);
    await query(admin, `GRANT USAGE ON SCHEMA public TO ${ROLE}; GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO ${ROLE}`);
    url.username = ROLE;
    url.password = PASSWORD;
    out[key] = url.toString();
  }
  return { desktopUrl: out.desktopUrl ?? '', cloudUrl: out.cloudUrl ?? '' };
}

describe('the late-commit clamp without pg_read_all_stats', () => {
  const dbs = useFreshDatabases('nostats');

  it('a phone transaction (another role) that inserted a row and stays open across a reverse run: the row arrives on the next run', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 1, 1);
    const plain = await asPlainRole(dbs);
    // No lookback: only the clamp can bring the late row.
    const config = await jobsConfig(plain, { lookback: '0s' });
    await apply(config);

    const phone = new pg.Client({ connectionString: dbs.cloudUrl });
    await phone.connect();
    try {
      await phone.query('BEGIN');
      await phone.query(`INSERT INTO job (job_id, client_id, title, status, source) VALUES (2, 1, 'late', 'open', 'M')`);
      await new Promise((r) => setTimeout(r, 20));
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (3, 1, 'early commit', 'open', 'M')`);

      const first = await apply(config, { direction: 'reverse', tables: ['job'] });
      expect(first.steps[0]).toMatchObject({ status: 'succeeded', read: 1 });

      await phone.query('COMMIT');
    } finally {
      await phone.end();
    }
    await apply(config, { direction: 'reverse', tables: ['job'] });

    const ids = await query<{ job_id: number }>(dbs.desktopUrl, 'SELECT job_id FROM job WHERE job_id > 1 ORDER BY job_id');
    expect(ids.map((r) => r.job_id)).toEqual([2, 3]);
  });

  it('variation: a phone UPDATE of its own row (updated_at = now()) held open across a run arrives too', async () => {
    const plain = await asPlainRole(dbs);
    const config = await jobsConfig(plain, { lookback: '0s' });
    const phone = new pg.Client({ connectionString: dbs.cloudUrl });
    await phone.connect();
    try {
      await phone.query('BEGIN');
      await phone.query(`UPDATE job SET title = 'edited late', updated_at = now() WHERE job_id = 2`);
      await new Promise((r) => setTimeout(r, 20));
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (4, 1, 'early commit', 'open', 'M')`);
      const first = await apply(config, { direction: 'reverse', tables: ['job'] });
      expect(first.steps[0]?.status).toBe('succeeded');
      await phone.query('COMMIT');
    } finally {
      await phone.end();
    }
    await apply(config, { direction: 'reverse', tables: ['job'] });

    const rows = await query<{ title: string }>(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 2');
    expect(rows[0]?.title).toBe('edited late');
  });

  it('a phone transaction that began before the read and wrote only after it: the row arrives on the next run (the read snapshot\'s xmin)', async () => {
    const plain = await asPlainRole(dbs);
    const config = await jobsConfig(plain, { lookback: '0s' });
    await apply(config, { direction: 'reverse', tables: ['job'] });
    const phone = new pg.Client({ connectionString: dbs.cloudUrl });
    await phone.connect();
    try {
      // Its now() (the default of updated_at) is fixed here, before the read; nothing shows in pg_locks yet.
      await phone.query('BEGIN');
      await phone.query('SELECT now()');
      await new Promise((r) => setTimeout(r, 20));
      await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (5, 1, 'early commit', 'open', 'M')`);
      const first = await apply(config, { direction: 'reverse', tables: ['job'] });
      expect(first.steps[0]).toMatchObject({ status: 'succeeded', mode: 'incremental' });
      expect(first.steps[0]?.reason).toMatch(/and rows written by transactions from \d+ on \(running at the last read\), whatever their cursor value/);
      await phone.query(`INSERT INTO job (job_id, client_id, title, status, source) VALUES (6, 1, 'began early, wrote late', 'open', 'M')`);
      await phone.query('COMMIT');
    } finally {
      await phone.end();
    }
    const [late] = await query<{ late: boolean }>(dbs.cloudUrl, `SELECT (SELECT updated_at FROM job WHERE job_id = 6) < (SELECT updated_at FROM job WHERE job_id = 5) AS late`);
    expect(late?.late).toBe(true);
    await apply(config, { direction: 'reverse', tables: ['job'] });

    const ids = await query<{ job_id: number }>(dbs.desktopUrl, 'SELECT job_id FROM job WHERE job_id IN (5, 6) ORDER BY job_id');
    expect(ids.map((r) => r.job_id)).toEqual([5, 6]);
  });

  it('variation: a row committed after the read with a cursor value far older than the watermark (an offline phone\'s own clock) arrives on the next run', async () => {
    const plain = await asPlainRole(dbs);
    const config = await jobsConfig(plain, { lookback: '0s' });
    await apply(config, { direction: 'reverse', tables: ['job'] });
    await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source, created_at, updated_at)
      VALUES (7, 1, 'written offline', 'open', 'M', '2001-02-03 04:05:06+00', '2001-02-03 04:05:06+00')`);
    const plan = await planCommand(config, { direction: 'reverse', tables: ['job'], mode: 'auto' });
    expect(planSql(plan)).toMatch(/OR \(f\.xmin::text::bigint >= 3/);
    await apply(config, { direction: 'reverse', tables: ['job'] });

    expect(await query(dbs.desktopUrl, 'SELECT title FROM job WHERE job_id = 7')).toEqual([{ title: 'written offline' }]);
  });

  it('validate --live, plan and status say the role cannot see other sessions’ transaction starts, and stop saying it once granted pg_read_all_stats', async () => {
    const plain = await asPlainRole(dbs);
    const config = await jobsConfig(plain);

    const live = await validateLive(config);
    expect(live.problems).toEqual([]);
    expect(live.roleWarnings.map((w) => w.database)).toEqual(['cloud']);
    expect(live.roleWarnings[0]?.message).toMatch(/cannot see other sessions' transaction starts/);
    expect(live.roleWarnings[0]?.hint).toMatch(/GRANT pg_read_all_stats/);
    const plan = await planCommand(config, { direction: 'both', tables: [], mode: 'auto' });
    expect(planSql(plan)).toMatch(/^-- warning: cloud: the role cannot see other sessions' transaction starts/m);
    expect(planSummary(plan)).toMatch(/^ {2}warning: cloud: the role cannot see other sessions' transaction starts/m);
    expect((await statusCommand(config, [])).warnings.map((w) => w.database)).toEqual(['cloud']);

    await query(dbs.cloudUrl, `GRANT pg_read_all_stats TO ${ROLE}`);
    try {
      expect((await validateLive(config)).roleWarnings).toEqual([]);
      expect((await planCommand(config, { direction: 'both', tables: [], mode: 'auto' })).warnings).toEqual([]);
    } finally {
      await query(dbs.cloudUrl, `REVOKE pg_read_all_stats FROM ${ROLE}`);
    }
  });
});
