/**
 * SPEC §7, the base across a crash: each database keeps its copy of the base, committed with its
 * data, so SIGKILL between forward's commit on the cloud and reverse's commit on the desktop leaves
 * the desktop's copy stale. A stale base may cause a false conflict but never a lost edit.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { bisyncSessions, waitForNoBisyncSessions } from '../reliability/kill-sessions.js';
import { envFor } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ROWS = 30_000;
let pair: ThreeWayPair;
afterAll(async () => await pair?.drop());

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

  // Forward committed, reverse did not: the desktop's base copy for job 1 is stale.
  expect((await pair.job('cloud', 1))?.status).toBe('office edit');
  expect((await pair.job('desktop', 2))?.status).toBe('Open');
  const baseOf = async (side: 'desktop' | 'cloud'): Promise<unknown> =>
    (await pair.sql(side, `SELECT fingerprint FROM bisync.base WHERE table_name = 'job' AND key = '["1"]'`))[0]?.fingerprint;
  expect(await baseOf('desktop')).not.toEqual(await baseOf('cloud'));

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
