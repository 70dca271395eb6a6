/**
 * SPEC §7, the base across a crash: each database keeps its copy of the base, committed with its
 * data; a step writes its source's copy after its target has committed. SIGKILL between forward's
 * commit on the cloud and reverse's commit on the desktop, or between a step's commit on its target
 * and the write of its source's copy, leaves the desktop's copy stale. A stale base may cause a
 * false conflict but never a lost edit.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { bisyncSessions, waitForNoBisyncSessions } from '../reliability/kill-sessions.js';
import { envFor, query } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ROWS = 30_000;
let pair: ThreeWayPair;
let copyPair: ThreeWayPair | undefined;
afterAll(async () => {
  await pair?.drop();
  await copyPair?.drop();
});

const baseOf = async (p: ThreeWayPair, side: 'desktop' | 'cloud', id: number): Promise<unknown> =>
  (await p.sql(side, `SELECT fingerprint FROM bisync.base WHERE table_name = 'job' AND key = $1::text`, [id]))[0]?.fingerprint;

it('a kill between the two databases’ commits loses no edit: the stale base on the desktop never lets a later edit be overwritten', async () => {
  pair = await ThreeWayPair.create('tw_kill', {});
  await pair.sql('desktop', `INSERT INTO job SELECT i, 'job ' || i, 'Open' FROM generate_series(1, ${ROWS}) AS i`);
  await pair.apply('both');
  // The office edits job 1; the phone edits job 2. Then `bisync apply` runs and is killed while
  // reverse works on the desktop: forward (job 1 → cloud, and the cloud's base) has committed.
  await pair.sql('desktop', `UPDATE job SET status = 'office edit' WHERE job_id = 1`);
  await pair.sql('cloud', `UPDATE job SET status = 'phone edit' WHERE job_id = 2`);
  const child = spawn(process.execPath, [join(ROOT, 'bin/bisync.js'), 'apply', '--config', pair.config.file, '--concurrency', '1', '--log-level', 'error'], {
    env: envFor(pair.dbs),
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let killed = false;
  for (let i = 0; i < 4000 && child.exitCode === null; i++) {
    const sessions = await bisyncSessions(pair.dbs.desktopUrl);
    if (sessions.some((s) => s.state === 'active' && /bisync_stage|WITH src AS/.test(s.query))) {
      killed = child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  expect(killed, 'the kill landed while reverse was running on the desktop').toBe(true);
  await waitForNoBisyncSessions(pair.dbs.desktopUrl);
  await waitForNoBisyncSessions(pair.dbs.cloudUrl);

  // Forward committed (and wrote the desktop's copy of the base after its commit), reverse did not:
  // the cloud's copy for job 2 still holds the version before the phone's edit.
  expect((await pair.job('cloud', 1))?.status).toBe('office edit');
  expect((await pair.job('desktop', 2))?.status).toBe('Open');
  expect(await baseOf(pair, 'desktop', 1)).toEqual(await baseOf(pair, 'cloud', 1));

  // Now the phone edits job 1 on top of the office edit forward carried, and the office edits job 2.
  await pair.sql('cloud', `UPDATE job SET status = 'phone after office' WHERE job_id = 1`);
  await pair.sql('desktop', `UPDATE job SET title = 'office retitled' WHERE job_id = 2`);
  await pair.apply('both');
  await pair.apply('both');

  // No edit lost: job 1 carries the phone's later edit on both sides (the fresher base, the
  // cloud's, shows the desktop still holds what was agreed); job 2 is a true conflict, parked with
  // both versions, each side keeping its own.
  expect(await pair.job('desktop', 1)).toMatchObject({ status: 'phone after office' });
  expect(await pair.job('cloud', 1)).toMatchObject({ status: 'phone after office' });
  expect(await pair.job('cloud', 2)).toMatchObject({ title: 'job 2', status: 'phone edit' });
  expect(await pair.job('desktop', 2)).toMatchObject({ title: 'office retitled', status: 'Open' });
  const parked = await pair.conflict('desktop', 2);
  expect(parked?.kind).toBe('update-update');
  expect(parked?.versions).toMatchObject({ desktop: { title: 'office retitled' }, cloud: { status: 'phone edit' } });
  expect((await pair.sql('desktop', `SELECT count(*)::int AS n FROM bisync.conflicts`))[0]?.n).toBe(1);
});

it('a kill after a step committed on its target and before it wrote its source’s copy of the base loses no edit', async () => {
  copyPair = await ThreeWayPair.create('tw_kill_copy', {});
  const p = copyPair;
  await p.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
  await p.sql('desktop', `UPDATE job SET status = 'office edit' WHERE job_id = 1`);
  const agreedBefore = await baseOf(p, 'desktop', 1);
  // A session of the test holds the desktop's base, so the write of the desktop's copy waits (after
  // forward has committed on the cloud): there bisync is killed, and its waiting write with it.
  const holder = new pg.Client({ connectionString: p.dbs.desktopUrl });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE bisync.base IN SHARE MODE');
    const child = spawn(process.execPath, [join(ROOT, 'bin/bisync.js'), 'apply', '--direction', 'forward', '--config', p.config.file, '--log-level', 'error'], {
      env: envFor(p.dbs),
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let waiting: number | undefined;
    for (let i = 0; i < 4000 && child.exitCode === null && waiting === undefined; i++) {
      const sessions = await query<{ pid: number; query: string; wait_event_type: string | null }>(
        p.dbs.desktopUrl,
        `SELECT pid, query, wait_event_type FROM pg_stat_activity WHERE application_name = 'bisync' AND datname = current_database()`,
      );
      waiting = sessions.find((s) => s.wait_event_type === 'Lock' && s.query.includes('jsonb_to_recordset'))?.pid;
    }
    expect(waiting, "the write of the desktop's copy was waiting").toBeDefined();
    expect(child.kill('SIGKILL')).toBe(true);
    await exited;
    await holder.query('SELECT pg_terminate_backend($1)', [waiting]);
    await holder.query('ROLLBACK');
  } finally {
    await holder.end();
  }
  await waitForNoBisyncSessions(p.dbs.desktopUrl);
  await waitForNoBisyncSessions(p.dbs.cloudUrl);

  // The cloud committed the edit and its copy of the base; the desktop's copy is stale.
  expect(await p.job('cloud', 1)).toMatchObject({ status: 'office edit' });
  expect(await baseOf(p, 'desktop', 1)).toEqual(agreedBefore);
  expect(await baseOf(p, 'cloud', 1)).not.toEqual(agreedBefore);

  // The phone edits job 1 on top of the office's edit: the fresher copy (the cloud's) says the
  // desktop holds what was agreed, so the phone's edit is carried, not parked and not reverted.
  await p.sql('cloud', `UPDATE job SET status = 'phone after office' WHERE job_id = 1`);
  await p.apply('both');
  await p.apply('both');
  expect(await p.job('desktop', 1)).toMatchObject({ status: 'phone after office' });
  expect(await p.job('cloud', 1)).toMatchObject({ status: 'phone after office' });
  expect(await p.conflicts('desktop')).toEqual([]);
  expect(await p.conflicts('cloud')).toEqual([]);
  expect(await baseOf(p, 'desktop', 1)).toEqual(await baseOf(p, 'cloud', 1));
});
