import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compiler/compile-plan.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { readCatalogs } from '../../src/commands/validate.js';
import { run, statement } from '../../src/executor/statements.js';
import { configHead, envFor, query, runCli, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';
import { waitForNoBisyncSessions } from './kill-sessions.js';

/**
 * Issue 7, fault injection: SIGKILL of the bisync process itself, at points chosen by a seeded
 * PRNG (BISYNC_FAULT_SEED) — some after a random delay, some once pg_stat_activity shows the step
 * in a given phase on T. After each kill the target holds the step entirely or not at all, the
 * step's state and run row agree with the data, no lock is left, and a final clean run converges.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ROWS = 60_000;
const seed = Number(process.env.BISYNC_FAULT_SEED ?? 20240707);

/** Seeded PRNG (mulberry32): the same seed replays the same kill points. */
function prng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where a kill lands: after a delay from spawn, or once T shows the step in a phase. */
type KillPoint = { after: 'delay' } | { after: 'phase'; phase: string; match: RegExp; upToMs: number };

const PHASES: KillPoint[] = [
  { after: 'phase', phase: 'COPY into T', match: /^COPY .* FROM STDIN/s, upToMs: 40 },
  { after: 'phase', phase: 'merge', match: /WITH src AS/, upToMs: 40 },
  // The last statements before COMMIT: the kill lands around the commit.
  { after: 'phase', phase: 'save-state', match: /state AS st/, upToMs: 5 },
  { after: 'phase', phase: 'record-run', match: /INSERT INTO "?bisync"?\.runs/, upToMs: 2 },
];

const dbs = useFreshDatabases('sigkill');
let file: string;
let config: ResolvedConfig;

beforeAll(async () => {
  await query(dbs.desktopUrl, `CREATE TABLE item (id integer PRIMARY KEY, payload text NOT NULL, version integer NOT NULL)`);
  await query(dbs.cloudUrl, `CREATE TABLE item (id integer PRIMARY KEY, payload text NOT NULL, version integer NOT NULL, source char(1))`);
  await query(dbs.desktopUrl, `INSERT INTO item SELECT i, md5(i::text) || md5((i * 7)::text), 0 FROM generate_series(1, ${ROWS}) i`);
  // A mobile-owned row on T that every step must leave alone.
  await query(dbs.cloudUrl, `INSERT INTO item VALUES (900000, 'mobile', 0, 'M')`);
  file = writeConfig(`
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
tables:
  - name: item
    primary_key: [id]
    direction: forward
`);
  config = await testConfig(file, dbs);
});

/** T's rows of the step (what forward owns) as count:md5, and F's rows in the same form. */
const digest = `count(*) || ':' || coalesce(md5(string_agg(id || '|' || payload || '|' || version, ',' ORDER BY id)), '')`;
const targetRows = async (): Promise<string> =>
  (await query<{ v: string }>(dbs.cloudUrl, `SELECT ${digest} AS v FROM item WHERE source IS DISTINCT FROM 'M'`))[0]?.v ?? '';
const sourceRows = async (): Promise<string> => (await query<{ v: string }>(dbs.desktopUrl, `SELECT ${digest} AS v FROM item`))[0]?.v ?? '';
const mobileRow = async (): Promise<string> =>
  (await query<{ v: string }>(dbs.cloudUrl, `SELECT coalesce(string_agg(i::text, ','), '') AS v FROM item i WHERE source = 'M'`))[0]?.v ?? '';

/**
 * The step's bookkeeping on T: when its state row was last saved and how many runs of it committed
 * as succeeded. apply claims the state row (watermark NULL) in its own transaction before the step
 * runs, so that the step can lock it; the step's save-state then sets updated_at with the data.
 */
async function bookkeeping(): Promise<{ stateSavedAt: string | null; succeeded: number }> {
  const exists = (await query<{ ok: boolean }>(dbs.cloudUrl, `SELECT to_regclass('bisync.runs') IS NOT NULL AS ok`))[0]?.ok === true;
  if (!exists) return { stateSavedAt: null, succeeded: 0 };
  const state = await query<{ at: string }>(dbs.cloudUrl, `SELECT updated_at::text AS at FROM bisync.state WHERE table_name = 'item' AND direction = 'forward'`);
  const runs = await query<{ n: number }>(
    dbs.cloudUrl,
    `SELECT count(*)::int AS n FROM bisync.runs WHERE table_name = 'item' AND direction = 'forward' AND status = 'succeeded'`,
  );
  return { stateSavedAt: state[0]?.at ?? null, succeeded: runs[0]?.n ?? 0 };
}

/** Whether a new run of the step would get its lock: the planned lock statement, run on T and rolled back. */
async function lockIsFree(): Promise<boolean> {
  const { catalogs, state } = await readCatalogs(config);
  const step = compilePlan(config, catalogs, state, { direction: 'forward', tables: ['item'], mode: 'auto' }).steps[0];
  if (step === undefined) throw new Error('no step planned for item forward');
  return await withClient(dbs.cloudUrl, async (client) => {
    // Killed before its bootstrap committed: no state table, so no row anybody could hold.
    if ((await client.query<{ ok: boolean }>(`SELECT to_regclass('bisync.state') IS NOT NULL AS ok`)).rows[0]?.ok !== true) return true;
    await client.query('BEGIN');
    try {
      // The lock is the step's state row, FOR UPDATE NOWAIT: held elsewhere → lock_not_available;
      // no row yet → nothing to hold (a new run claims the row before it locks it).
      const rows = (await run<{ locked: boolean }>(client, statement(step, 'lock'))).rows;
      return rows.length === 0 || rows[0]?.locked === true;
    } catch (error) {
      if ((error as { code?: string }).code === '55P03') return false;
      throw error;
    } finally {
      await client.query('ROLLBACK');
    }
  });
}

/** Poll T until a bisync session shows a statement matching `match`; false when the process exited first. */
async function waitForPhase(watch: pg.Client, match: RegExp, exited: () => boolean): Promise<boolean> {
  const database = decodeURIComponent(new URL(dbs.cloudUrl).pathname.slice(1));
  const deadline = Date.now() + 60_000;
  while (!exited() && Date.now() < deadline) {
    const sessions = await watch.query<{ query: string }>(
      `SELECT query FROM pg_stat_activity WHERE datname = $1 AND application_name = 'bisync'`,
      [database],
    );
    if (sessions.rows.some((s) => match.test(s.query))) return true;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return false;
}

describe(`SIGKILL of bisync apply at seeded random points (BISYNC_FAULT_SEED=${seed})`, () => {
  const random = prng(seed);
  let watch: pg.Client;

  beforeAll(async () => {
    watch = new pg.Client({ connectionString: dbs.cloudUrl });
    await watch.connect();
  });
  afterAll(async () => {
    await watch?.end();
  });

  it('each kill leaves T with the step entirely or not at all, no lock, and a final run converges exactly', async () => {
    console.log(`sigkill: BISYNC_FAULT_SEED=${seed}`);
    const plan: KillPoint[] = [{ after: 'delay' }, ...PHASES, { after: 'delay' }, PHASES[Math.floor(random() * 3)] ?? { after: 'delay' }];
    const outcomes: string[] = [];

    for (const [i, point] of plan.entries()) {
      if (i > 0) {
        // New work for the step: fresh rows and a new version of a twelfth of the old ones.
        await query(
          dbs.desktopUrl,
          `INSERT INTO item SELECT i, md5(i::text), 0 FROM generate_series(${ROWS + (i - 1) * 5000 + 1}, ${ROWS + i * 5000}) i`,
        );
        await query(dbs.desktopUrl, `UPDATE item SET payload = md5(payload), version = version + 1 WHERE id % 12 = ${i}`);
      }
      const before = await targetRows();
      const wanted = await sourceRows();
      const booksBefore = await bookkeeping();

      const child = spawn(process.execPath, [join(ROOT, 'bin/bisync.js'), 'apply', '--config', file, '--direction', 'forward', '--table', 'item', '--log-level', 'error'], {
        env: envFor(dbs),
        stdio: 'ignore',
      });
      let exitedWith: string | undefined;
      const exited = new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          exitedWith = signal ?? `exit ${code}`;
          resolve();
        });
      });

      let where: string;
      if (point.after === 'delay') {
        const delay = 100 + Math.floor(random() * 2900);
        where = `${delay} ms after spawn`;
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, delay))]);
      } else {
        const extra = Math.floor(random() * point.upToMs);
        const seen = await waitForPhase(watch, point.match, () => exitedWith !== undefined);
        where = `${seen ? '' : 'never saw '}${point.phase} on T, +${extra} ms`;
        await new Promise((resolve) => setTimeout(resolve, extra));
      }
      child.kill('SIGKILL');
      await exited;
      // A run the kill came too late for must have succeeded on its own (not exit 3: a lock left over).
      if (exitedWith !== 'SIGKILL') expect(exitedWith).toBe('exit 0');

      // The killed client's sessions end as soon as the server notices; then nothing may hold the lock.
      await waitForNoBisyncSessions(dbs.cloudUrl);
      await waitForNoBisyncSessions(dbs.desktopUrl);
      expect(await lockIsFree(), 'a new run of the step would get its lock').toBe(true);

      const after = await targetRows();
      const books = await bookkeeping();
      expect([before, wanted], 'T holds the step entirely or not at all').toContain(after);
      const applied = after === wanted && before !== wanted;
      // The run row and the state row are committed with the data, never without it.
      expect(books.succeeded).toBe(booksBefore.succeeded + (applied ? 1 : 0));
      if (applied) expect(books.stateSavedAt, 'the state row is saved with the data').not.toBe(booksBefore.stateSavedAt);
      else if (booksBefore.stateSavedAt !== null) expect(books.stateSavedAt, 'no state saved without the data').toBe(booksBefore.stateSavedAt);
      if (books.succeeded > 0) expect(books.stateSavedAt).not.toBeNull();
      expect(await mobileRow()).toBe('(900000,mobile,0,M)');
      outcomes.push(`kill ${i + 1} at ${where} (${exitedWith}): ${applied ? 'applied' : 'unchanged'}`);
    }
    console.log(`sigkill outcomes:\n  ${outcomes.join('\n  ')}`);

    const final = await runCli(['apply', '--config', file, '--direction', 'forward', '--table', 'item', '--log-level', 'error'], envFor(dbs));
    expect(final.code, final.stderr).toBe(0);
    expect(await targetRows()).toBe(await sourceRows());
    const counts = await query<{ n: number; d: number }>(dbs.cloudUrl, `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM item`);
    expect(counts[0]).toEqual({ n: ROWS + (plan.length - 1) * 5000 + 1, d: ROWS + (plan.length - 1) * 5000 + 1 });
    expect(await mobileRow()).toBe('(900000,mobile,0,M)');
  }, 180_000);
});
