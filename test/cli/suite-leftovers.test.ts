import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { leftoversOf, passwordFiles, runNode } from '../harness/leftovers.js';

const VITEST = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));
const FIXTURE_CONFIG = fileURLToPath(new URL('./fixtures/interrupted-suite/vitest.config.ts', import.meta.url));

/** A one-file suite on the real harness, with the embedded server (as on a machine without Docker). */
async function runSuite(mode: 'pass' | 'hold'): Promise<Awaited<ReturnType<typeof runNode>>> {
  const env: NodeJS.ProcessEnv = { ...process.env, BISYNC_TEST_NO_DOCKER: '1', BISYNC_FIXTURE: mode };
  delete env.BISYNC_TEST_DESKTOP_URL;
  delete env.BISYNC_TEST_CLOUD_URL;
  return await runNode([VITEST, 'run', '--config', FIXTURE_CONFIG], {
    env,
    ownGroup: true,
    onOutput: (output, child) => {
      // Ctrl-C in a terminal signals the whole foreground group: vitest, its workers, the server.
      if (mode === 'hold' && output.includes('fixture test running') && child.pid !== undefined) process.kill(-child.pid, 'SIGINT');
    },
  });
}

describe('npm test leaves nothing behind', () => {
  it('a suite that finishes, and a suite interrupted with Ctrl-C, leave no server, data directory or password file', async () => {
    const passwordsBefore = passwordFiles();
    const [finished, interrupted] = await Promise.all([runSuite('pass'), runSuite('hold')]);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/fixture test running/);
    expect(interrupted.stdout).toMatch(/fixture test running/);
    expect(interrupted.code ?? interrupted.signal).not.toBe(0);
    expect(leftoversOf(finished.pid)).toEqual({ dirs: [], processes: [] });
    expect(leftoversOf(interrupted.pid)).toEqual({ dirs: [], processes: [] });
    expect(passwordFiles()).toEqual(passwordsBefore);
  }, 120_000);
});
