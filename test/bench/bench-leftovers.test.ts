import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { leftoversOf, passwordFiles, runNode } from '../harness/leftovers.js';

// `npm run bench` on its own embedded servers (no --url-*), as a first-time user runs it.
const RUN_BENCH = fileURLToPath(new URL('../../dist/bench/run-bench.js', import.meta.url));

async function runBench(ending: 'finish' | 'Ctrl-C' | 'servers killed'): Promise<Awaited<ReturnType<typeof runNode>>> {
  const out = mkdtempSync(join(tmpdir(), 'bisync-bench-test-'));
  try {
    return await runNode([RUN_BENCH, '--sf', '0.01', '--runs', '1', '--tables', 'orgmaster', '--out', join(out, 'latest.md')], {
      ownGroup: true,
      onOutput: (output, child) => {
        if (!output.includes('loading the sample') || child.pid === undefined) return;
        if (ending === 'Ctrl-C') process.kill(-child.pid, 'SIGINT');
        if (ending === 'servers killed') for (const pid of leftoversOf(child.pid).processes) process.kill(pid, 'SIGKILL');
      },
    });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

describe('npm run bench leaves nothing behind', () => {
  it('finished, interrupted with Ctrl-C, or failed because its servers died: no server, data directory or password file remains, and no stack trace', async () => {
    const passwordsBefore = passwordFiles();
    const [finished, interrupted, failed] = await Promise.all([runBench('finish'), runBench('Ctrl-C'), runBench('servers killed')]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(interrupted.code ?? interrupted.signal).not.toBe(0);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/^error: /m);
    for (const run of [finished, interrupted, failed]) {
      expect(run.stderr).not.toMatch(/^\s+at /m);
      expect(leftoversOf(run.pid)).toEqual({ dirs: [], processes: [] });
    }
    expect(passwordFiles()).toEqual(passwordsBefore);
  }, 300_000);
});
