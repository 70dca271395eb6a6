import { configHead, query, writeConfig } from '../harness/bisync.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, seedDesktop } from '../executor/jobs-fixture.js';

export type Direction = 'forward' | 'reverse';

/** A desktop job the cloud refuses (CHECK), and a mobile job the desktop refuses (missing FK parent). */
export const FORWARD_REJECT = 99_001;
export const REVERSE_REJECT = 900_001;
/** Cloud-created (mobile) jobs have ids from here; desktop-created ones stay below. */
const MOBILE_IDS = 100_000;

/** The jobs config, both tables both ways, origin rule source D/M, cursors on the cloud. */
export function jobsConfigFile(): string {
  return writeConfig(`
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
  timestamps: { cloud: [updated_at, created_at] }
  lookback: 5s
tables:
  - name: client
    primary_key: [client_id]
    direction: both
  - name: job
    primary_key: [job_id]
    direction: both
    after: [client]
`);
}

/**
 * The jobs slice with `jobs` desktop jobs, plus one row each direction must reject: a desktop job
 * whose title the cloud's CHECK refuses, and a mobile job whose client the desktop lacks (a
 * desktop-owned client only the cloud still has). Both make every merge bisect down to a reject.
 */
export async function seedJobs(dbs: TestDatabases, jobs: number): Promise<void> {
  await createJobsSchema(dbs);
  await seedDesktop(dbs, 3, jobs);
  await query(dbs.cloudUrl, `ALTER TABLE job ADD CONSTRAINT job_title_not_bad CHECK (title NOT LIKE 'bad%')`);
  await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (${FORWARD_REJECT}, 1, 'bad title', 'open')`);
  await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (999, 'closed on the desktop', 'D')`);
  await query(dbs.cloudUrl, `INSERT INTO job (job_id, client_id, title, status, source) VALUES (${REVERSE_REJECT}, 999, 'orphan', 'open', 'M')`);
}

let round = 0;

/**
 * New work for one step on its source: `inserts` new rows with fresh keys and an edit of `updates`
 * existing ones, so "before" and "after" the step differ in both inserted and updated rows.
 */
export async function makeWork(dbs: TestDatabases, direction: Direction, inserts = 300, updates = 50): Promise<void> {
  round++;
  if (direction === 'forward') {
    await query(
      dbs.desktopUrl,
      `INSERT INTO job (job_id, client_id, title, status)
       SELECT 10000 + $1::int * 1000 + i, 1 + i % 3, 'desktop r' || $1 || ' #' || i, 'open' FROM generate_series(1, $2::int) i`,
      [round, inserts],
    );
    await query(
      dbs.desktopUrl,
      `UPDATE job SET title = title || ' +' || $1 WHERE job_id IN (SELECT job_id FROM job WHERE job_id <> ${FORWARD_REJECT} ORDER BY job_id LIMIT $2)`,
      [round, updates],
    );
  } else {
    await query(
      dbs.cloudUrl,
      `INSERT INTO job (job_id, client_id, title, status, source)
       SELECT ${MOBILE_IDS} + $1::int * 1000 + i, 1 + i % 3, 'mobile r' || $1 || ' #' || i, 'open', 'M' FROM generate_series(1, $2::int) i`,
      [round, inserts],
    );
    await query(
      dbs.cloudUrl,
      `UPDATE job SET title = title || ' +' || $1, updated_at = now()
        WHERE job_id IN (SELECT job_id FROM job WHERE source = 'M' AND job_id <> ${REVERSE_REJECT} ORDER BY job_id LIMIT $2)`,
      [round, updates],
    );
  }
}

export const targetUrl = (dbs: TestDatabases, direction: Direction): string => (direction === 'forward' ? dbs.cloudUrl : dbs.desktopUrl);
export const sourceUrl = (dbs: TestDatabases, direction: Direction): string => (direction === 'forward' ? dbs.desktopUrl : dbs.cloudUrl);

export interface TargetSnapshot {
  /** Row count and md5 over every row of T's job table, every column, in key order. */
  rows: string;
  /** The step's watermark ('none' when the step has no state row yet). */
  state: string;
  /** The step's rejects: key, reason, SQLSTATE and row (not attempts or times, which every run bumps). */
  rejects: string;
}

/** What one step is responsible for on its target: T's rows, the step's state row and its rejects. */
export async function snapshotTarget(dbs: TestDatabases, direction: Direction): Promise<TargetSnapshot> {
  const url = targetUrl(dbs, direction);
  const rows = await query<{ v: string }>(url, `SELECT count(*) || ':' || coalesce(md5(string_agg(j::text, ',' ORDER BY job_id)), '') AS v FROM job j`);
  const hasState = (await query<{ ok: boolean }>(url, `SELECT to_regclass('bisync.state') IS NOT NULL AS ok`))[0]?.ok === true;
  const state = hasState
    ? await query<{ v: string | null }>(url, `SELECT watermark::text AS v FROM bisync.state WHERE table_name = 'job' AND direction = $1`, [direction])
    : [];
  const rejects = hasState
    ? await query<{ v: string }>(
        url,
        `SELECT coalesce(string_agg(key::text || ' ' || reason || ' ' || coalesce(error_code, '-') || ' ' || row_data::text, '; ' ORDER BY key::text), '') AS v
           FROM bisync.rejects WHERE table_name = 'job' AND direction = $1`,
        [direction],
      )
    : [];
  return { rows: rows[0]?.v ?? '', state: state.length === 0 ? 'none' : (state[0]?.v ?? 'null'), rejects: rejects[0]?.v ?? '' };
}

const line = `job_id || '|' || client_id || '|' || title || '|' || coalesce(status, '-')`;

/**
 * The rows this direction's source owns (forward: the desktop's own rows, not its copies of mobile
 * ones, which forward protects on the cloud) (minus the one row it must reject) against what T holds
 * of them: equal means nothing was lost, duplicated, left over or changed on the way.
 */
export async function ownedRows(dbs: TestDatabases, direction: Direction): Promise<{ source: string[]; target: string[]; rejectKeys: string[] }> {
  const lines = async (url: string, where: string): Promise<string[]> =>
    (await query<{ r: string }>(url, `SELECT ${line} AS r FROM job WHERE ${where} ORDER BY job_id`)).map((r) => r.r);
  const source =
    direction === 'forward'
      ? await lines(dbs.desktopUrl, `job_id < ${MOBILE_IDS} AND job_id <> ${FORWARD_REJECT}`)
      : await lines(dbs.cloudUrl, `source = 'M' AND job_id <> ${REVERSE_REJECT}`);
  const target =
    direction === 'forward' ? await lines(dbs.cloudUrl, `source IS DISTINCT FROM 'M'`) : await lines(dbs.desktopUrl, `job_id >= ${MOBILE_IDS}`);
  const rejectKeys = (
    await query<{ k: string }>(targetUrl(dbs, direction), `SELECT key->>'job_id' AS k FROM bisync.rejects WHERE table_name = 'job' AND direction = $1 ORDER BY 1`, [direction])
  ).map((r) => r.k);
  return { source, target, rejectKeys };
}

export const expectedRejectKeys = (direction: Direction): string[] => [String(direction === 'forward' ? FORWARD_REJECT : REVERSE_REJECT)];
