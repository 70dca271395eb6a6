/**
 * SPEC §7 commands: `bisync conflicts` (exit 1 when any, --json shape, writes nothing), `bisync
 * resolve` (the kept version on both sides, new base, conflict cleared; bad input exit 2 with
 * nothing written), and `status`/`apply` reporting conflicts. Through the built CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envFor, runCli } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

let pair: ThreeWayPair;
const cli = async (...args: string[]) => await runCli([...args, '--config', pair.config.file], envFor(pair.dbs));
const snapshot = async (): Promise<string> =>
  JSON.stringify([
    await pair.jobs('desktop'),
    await pair.jobs('cloud'),
    await pair.sql('desktop', 'SELECT * FROM bisync.base ORDER BY key'),
    await pair.sql('cloud', 'SELECT * FROM bisync.base ORDER BY key'),
    await pair.sql('desktop', 'SELECT * FROM bisync.conflicts ORDER BY key'),
    await pair.sql('cloud', 'SELECT * FROM bisync.conflicts ORDER BY key'),
  ]);

beforeAll(async () => {
  pair = await ThreeWayPair.create('tw_commands', {});
  await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open'], [3, 'three', 'Open']]);
  await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id IN (1, 2)`);
  await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id IN (1, 2)`);
  await pair.sql('desktop', `DELETE FROM job WHERE job_id = 3`);
  await pair.sql('cloud', `UPDATE job SET title = 'phone three' WHERE job_id = 3`);
});
afterAll(async () => await pair.drop());

describe('bisync conflicts and bisync resolve', () => {
  it('apply reports the conflicts it parked, per step, without failing', async () => {
    const result = await cli('apply', '--mode', 'full');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/job forward: 3 conflicts \(edited on both sides and parked; see bisync conflicts --table job\)/);
  });

  it('bisync conflicts lists each conflict with both versions column by column, exits 1, and writes nothing', async () => {
    const before = await snapshot();
    const text = await cli('conflicts');
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/job 1: update-update/);
    expect(text.stdout).toMatch(/status\s+office\s+phone/);
    expect(text.stdout).toMatch(/job 3: delete-update/);
    expect(text.stdout).toMatch(/\(deleted\)/);

    const json = await cli('conflicts', '--json', '--table', 'job');
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { conflicts: { table: string; key: Record<string, string>; kind: string; desktop: unknown; cloud: unknown }[] };
    expect(doc.conflicts.map((c) => [c.table, c.key, c.kind])).toEqual([
      ['job', { job_id: '1' }, 'update-update'],
      ['job', { job_id: '2' }, 'update-update'],
      ['job', { job_id: '3' }, 'delete-update'],
    ]);
    expect(doc.conflicts[0]?.desktop).toMatchObject({ job_id: 1, title: 'one', status: 'office' });
    expect(doc.conflicts[0]?.cloud).toMatchObject({ job_id: 1, title: 'one', status: 'phone' });
    expect(doc.conflicts[2]?.desktop).toBeNull();
    expect(await snapshot()).toBe(before);
  });

  it('status lists pending conflicts per step and exits 1', async () => {
    const result = await cli('status');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/job forward: 3 conflicts pending \(bisync conflicts --table job\)/);
  });

  it('resolve refuses a key with no conflict, a --keep naming no database, and a key and --all together: exit 2, nothing written', async () => {
    const before = await snapshot();
    const noConflict = await cli('resolve', '--table', 'job', '--key', '99', '--keep', 'desktop');
    expect(noConflict.code).toBe(2);
    expect(noConflict.stderr).toMatch(/no pending conflict with key 99/);
    const badKeep = await cli('resolve', '--table', 'job', '--key', '1', '--keep', 'laptop');
    expect(badKeep.code).toBe(2);
    expect(badKeep.stderr).toMatch(/--keep laptop names no database/);
    expect(badKeep.stderr).toMatch(/desktop or cloud/);
    const both = await cli('resolve', '--table', 'job', '--key', '1', '--all', '--keep', 'desktop');
    expect(both.code).toBe(2);
    expect(await snapshot()).toBe(before);
  });

  it('resolve --key --keep writes the kept version to both sides, clears the conflict, and later edits travel again', async () => {
    const result = await cli('resolve', '--table', 'job', '--key', '1', '--keep', 'cloud');
    expect(result.code).toBe(0);
    expect(await pair.job('desktop', 1)).toMatchObject({ status: 'phone' });
    expect(await pair.job('cloud', 1)).toMatchObject({ status: 'phone' });
    expect(await pair.conflict('desktop', 1)).toBeUndefined();
    expect(await pair.conflict('cloud', 1)).toBeUndefined();

    const rerun = await pair.apply('both', { mode: 'full' });
    for (const step of rerun.steps) expect(step.updated + step.inserted + step.deleted).toBe(0);
    await pair.sql('desktop', `UPDATE job SET status = 'done' WHERE job_id = 1`);
    await pair.apply('both');
    expect(await pair.job('cloud', 1)).toMatchObject({ status: 'done' });
  });

  it('resolve --all --keep desktop carries the office delete and the office edit, and conflicts then exits 0', async () => {
    const result = await cli('resolve', '--table', 'job', '--all', '--keep', 'desktop');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/2 conflicts of job resolved/);
    expect(await pair.job('cloud', 2)).toMatchObject({ status: 'office' });
    expect(await pair.job('cloud', 3)).toBeUndefined();
    expect(await pair.job('desktop', 3)).toBeUndefined();
    const none = await cli('conflicts');
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/No conflicts pending/);
    await pair.apply('both', { mode: 'full' });
    expect(await pair.jobs('desktop')).toEqual(await pair.jobs('cloud'));
  });
});
