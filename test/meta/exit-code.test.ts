import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the test command itself', () => {
  it('exits non-zero when a test fails, even with the embedded PostgreSQL harness loaded', async () => {
    const code = await new Promise<number>((resolve) => {
      execFile(
        process.execPath,
        [fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url)), 'run', '--config', 'test/meta/fixture/vitest.fixture.config.ts'],
        { cwd: ROOT, env: { ...process.env, CI: '' } },
        (error) => resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : -1),
      );
    });
    expect(code).toBe(1);
  }, 120_000);
});
