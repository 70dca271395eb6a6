import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedServer } from '../../src/embedded/embedded-server.js';
import type { EmbeddedServer } from '../../src/embedded/embedded-server.js';
import { envFor, EXAMPLE_CONFIG, loadSample, query, runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { leftoversOf, runNode } from '../harness/leftovers.js';

const BIN = fileURLToPath(new URL('../../bin/bisync.js', import.meta.url));
const STACK_FRAME = /^\s+at /m;

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  return await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 1));
    });
  });
}

/** One `error:` line (and optionally its hint), nothing else: what a person sees when a command fails. */
function expectOneClearError(stderr: string): void {
  expect(stderr).not.toMatch(STACK_FRAME);
  const lines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
  expect(lines[0]).toMatch(/^error: \S/);
  expect(lines.slice(1).every((l) => l.startsWith('  hint: '))).toBe(true);
}

describe('no command prints a stack trace', () => {
  it('every command against an unreachable database: one line naming it, exit 2', async () => {
    const port = await closedPort();
    const env = { ...process.env, DESKTOP_DATABASE_URL: `postgres://u:pw@127.0.0.1:${port}/desk`, CLOUD_DATABASE_URL: `postgres://u:pw@127.0.0.1:${port}/cloud` };
    const commands = [['validate', '--live'], ['plan'], ['apply'], ['status'], ['verify'], ['init', '--out', join(mkdtempSync(join(tmpdir(), 'bisync-test-')), 'new.yaml')]];
    const results = await Promise.all(commands.map(async (args) => ({ args, result: await runCli([...args, '--config', EXAMPLE_CONFIG], env) })));
    for (const { args, result } of results) {
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/error: cannot connect to desktop \(127\.0\.0\.1:\d+\/desk\)/);
      expectOneClearError(result.stderr);
    }
  });

  it('the stack appears only when asked for with --log-level debug', async () => {
    const port = await closedPort();
    const env = { ...process.env, DESKTOP_DATABASE_URL: `postgres://u:pw@127.0.0.1:${port}/desk`, CLOUD_DATABASE_URL: `postgres://u:pw@127.0.0.1:${port}/cloud` };
    const result = await runCli(['validate', '--live', '--config', EXAMPLE_CONFIG, '--log-level', 'debug'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: cannot connect to desktop/m);
    expect(result.stderr).toMatch(STACK_FRAME);
  });

  describe('against reachable databases', () => {
    const dbs = useFreshDatabases('nostack');
    beforeAll(async () => {
      await loadSample(dbs, 0.01);
    });

    it('plan whose reader goes away (bisync plan | head): ends quietly, no unhandled error event', async () => {
      const result = await runNode([BIN, 'plan', '--config', EXAMPLE_CONFIG], {
        env: envFor(dbs),
        beforeOutput: (child) => child.stdout?.destroy(),
      });
      expect(result.stderr).not.toMatch(STACK_FRAME);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    });

    it('init --out where no file can be written: one line, exit 2', async () => {
      const notADirectory = writeConfig('a file, not a directory\n', 'plain-file');
      const result = await runCli(['init', '--desktop', dbs.desktopUrl, '--cloud', dbs.cloudUrl, '--out', join(notADirectory, 'sync.config.yaml')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/error: .*sync\.config\.yaml: cannot be written/);
      expectOneClearError(result.stderr);
    });
  });

  describe('a server killed while a command runs', () => {
    let server: EmbeddedServer;
    beforeAll(async () => {
      server = await startEmbeddedServer({ fast: true });
      await query(server.url('postgres'), 'CREATE DATABASE desk');
      await query(server.url('postgres'), 'CREATE DATABASE cloud');
      await loadSample({ desktopUrl: server.url('desk'), cloudUrl: server.url('cloud') }, 0.3);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('apply whose database server goes away mid-run: the failure in one line, no stack trace', async () => {
      let stopped: Promise<void> | undefined;
      const result = await runNode([BIN, 'apply', '--config', EXAMPLE_CONFIG, '--log-format', 'json'], {
        env: { ...process.env, DESKTOP_DATABASE_URL: server.url('desk'), CLOUD_DATABASE_URL: server.url('cloud') },
        // The first log line comes from the first step: stop the server under it.
        onOutput: (output) => {
          if (output.includes('"msg"')) stopped ??= server.stop();
        },
      });
      await stopped;
      expect(stopped).toBeDefined();
      expect([1, 2]).toContain(result.code);
      expect(result.stderr + result.stdout).not.toMatch(STACK_FRAME);
    });
  });

  it('demo whose servers are killed midway: one line, no stack trace, nothing left behind', async () => {
    const result = await runNode([BIN, 'demo'], {
      onOutput: (output, child) => {
        if (!output.includes('2. Loaded')) return;
        for (const pid of leftoversOf(child.pid).processes) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      },
    });
    expect(result.code).not.toBe(0);
    expectOneClearError(result.stderr);
    expect(leftoversOf(result.pid)).toEqual({ dirs: [], processes: [] });
  }, 120_000);
});

