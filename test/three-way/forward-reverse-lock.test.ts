/**
 * edits: both: forward and reverse of the same table, started by two processes at once, run one at
 * a time (issue 10): the second gets exit 3 and changes nothing, whichever direction comes first;
 * locks are NOWAIT, so neither waits for the other (no deadlock). The first process here is the
 * test's own `apply`, held between its read and its commit; the second is the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, envFor, runCli } from '../harness/bisync.js';
import { ThreeWayPair } from './three-way-fixture.js';

let pair: ThreeWayPair;
beforeAll(async () => {
  pair = await ThreeWayPair.create('tw_pairlock');
  await pair.agreed([[1, 'one', 'Open'], [2, 'two', 'Open']]);
});
afterAll(async () => await pair.drop());

const cli = async (direction: 'forward' | 'reverse') =>
  await runCli(['apply', '--config', pair.config.file, '--direction', direction, '--log-level', 'error'], envFor(pair.dbs));
const state = async (): Promise<string> =>
  JSON.stringify([
    await pair.jobs('desktop'),
    await pair.jobs('cloud'),
    await pair.sql('desktop', 'SELECT key, fingerprint, generation FROM bisync.base ORDER BY key'),
    await pair.sql('cloud', 'SELECT key, fingerprint, generation FROM bisync.base ORDER BY key'),
  ]);

describe('edits: both: forward and reverse of one table never run at the same time', () => {
  it('reverse started while forward runs exits 3 and changes nothing on either side', async () => {
    await pair.sql('desktop', `UPDATE job SET status = 'office' WHERE job_id = 1`);
    await pair.sql('cloud', `UPDATE job SET status = 'phone' WHERE job_id = 2`);
    let second: Awaited<ReturnType<typeof runCli>> | undefined;
    let during = '';
    const first = await apply(pair.config, {
      direction: 'forward',
      // Forward holds its lock between its read and its commit; reverse starts now, in another process.
      afterRead: async () => {
        const before = await state();
        second = await cli('reverse');
        during = before === (await state()) ? 'unchanged' : 'changed';
      },
    });

    expect(second?.code).toBe(3);
    expect(second?.stdout + String(second?.stderr), 'the message').toMatch(/job reverse: the forward step of this edits: both table is running/);
    expect(during).toBe('unchanged');
    expect(first.exitCode).toBe(0);
    expect(first.steps[0]).toMatchObject({ status: 'succeeded', updated: 1 });
    expect(await pair.job('desktop', 2)).toMatchObject({ status: 'Open' });
  });

  it('forward started while reverse runs exits 3 and changes nothing on either side', async () => {
    let second: Awaited<ReturnType<typeof runCli>> | undefined;
    let during = '';
    const first = await apply(pair.config, {
      direction: 'reverse',
      afterRead: async () => {
        await pair.sql('desktop', `UPDATE job SET title = 'office title' WHERE job_id = 1`);
        const before = await state();
        second = await cli('forward');
        during = before === (await state()) ? 'unchanged' : 'changed';
      },
    });

    expect(second?.code).toBe(3);
    expect(second?.stdout + String(second?.stderr), 'the message').toMatch(/job forward: another run holds this step's lock: the same step, or the other direction of this edits: both table/);
    expect(during).toBe('unchanged');
    expect(first.exitCode).toBe(0);
    expect(first.steps[0]).toMatchObject({ status: 'succeeded', updated: 1 });
    expect(await pair.job('desktop', 2)).toMatchObject({ status: 'phone' });
    expect(await pair.job('cloud', 1)).toMatchObject({ title: 'one' });
  });

  it('once the first has committed, the other direction runs and both sides agree', async () => {
    expect((await cli('forward')).code).toBe(0);
    expect((await cli('reverse')).code).toBe(0);
    expect(await pair.jobs('desktop')).toEqual(await pair.jobs('cloud'));
    expect(await pair.job('cloud', 1)).toMatchObject({ title: 'office title', status: 'office' });
  });
});
