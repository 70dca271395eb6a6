import { existsSync, readdirSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startEmbeddedServer } from '../../src/embedded/embedded-server.js';
import { query } from '../harness/bisync.js';
import { leftoversOf, passwordFiles, runNode } from '../harness/leftovers.js';

const SERVER_MODULE = fileURLToPath(new URL('../../dist/src/embedded/embedded-server.js', import.meta.url));

const listening = async (port: number): Promise<boolean> =>
  await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** A process that starts one embedded server, prints its port, then ends the way `how` says. */
const CHILD = `
import { startEmbeddedServer } from ${JSON.stringify(SERVER_MODULE)};
const server = await startEmbeddedServer({ fast: true });
console.log('ready ' + server.port);
const how = process.argv[1];
if (how === 'stop') await server.stop();
else if (how === 'exit') process.exit(3);
else if (how === 'throw') setTimeout(() => { throw new Error('thrown in a callback'); }, 0);
else if (how === 'reject') void Promise.reject(new Error('nobody caught this'));
else setInterval(() => undefined, 1000);
`;

async function endOneServer(how: 'stop' | 'exit' | 'throw' | 'reject' | 'SIGINT' | 'SIGTERM'): Promise<{ signal: NodeJS.Signals | null; code: number | null; port: number; pid: number | undefined }> {
  const result = await runNode(['--input-type=module', '-e', CHILD, how], {
    onOutput: (output, child) => {
      if ((how === 'SIGINT' || how === 'SIGTERM') && /ready \d+/.test(output)) child.kill(how);
    },
  });
  const port = Number(/ready (\d+)/.exec(result.stdout)?.[1]);
  expect(port, result.stderr).toBeGreaterThan(0);
  return { signal: result.signal, code: result.code, port, pid: result.pid };
}

describe('embedded servers leave nothing behind', () => {
  it('the password file initdb reads is 0600 in the server\'s own 0700 directory, and is gone once initdb has run; none lands in the temp directory', async () => {
    const before = passwordFiles();
    let seen: { file: number; dir: number } | undefined;
    const server = await startEmbeddedServer({
      fast: true,
      // initdb prints while it runs, i.e. while the file must exist.
      onLog: () => {
        if (seen !== undefined) return;
        const dir = readdirSync(tmpdir()).find((d) => d.startsWith(`bisync-pg-${process.pid}-`));
        if (dir === undefined || !existsSync(join(tmpdir(), dir, 'pwfile'))) return;
        seen = { file: statSync(join(tmpdir(), dir, 'pwfile')).mode & 0o777, dir: statSync(join(tmpdir(), dir)).mode & 0o777 };
      },
    });
    try {
      expect(seen).toEqual({ file: 0o600, dir: 0o700 });
      const [dir] = leftoversOf(process.pid).dirs;
      expect(dir).toBeDefined();
      expect(existsSync(join(tmpdir(), dir ?? '', 'pwfile'))).toBe(false);
      expect(passwordFiles()).toEqual(before);
      expect(await query(server.url('postgres'), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await server.stop();
    }
    expect(leftoversOf(process.pid)).toEqual({ dirs: [], processes: [] });
  });

  it('however the process ends (stop, process.exit, an uncaught exception, an unhandled rejection, SIGINT, SIGTERM), its server is stopped and its directory removed', async () => {
    const endings = ['stop', 'exit', 'throw', 'reject', 'SIGINT', 'SIGTERM'] as const;
    const results = await Promise.all(endings.map(async (how) => ({ how, ...(await endOneServer(how)) })));
    for (const r of results) {
      expect(leftoversOf(r.pid), r.how).toEqual({ dirs: [], processes: [] });
      expect(await listening(r.port), r.how).toBe(false);
    }
    const ended = Object.fromEntries(results.map((r) => [r.how, r.signal ?? r.code]));
    // A signal nobody else handles still ends the process as that signal would have.
    expect(ended).toEqual({ stop: 0, exit: 3, throw: 1, reject: 1, SIGINT: 'SIGINT', SIGTERM: 'SIGTERM' });
  }, 120_000);

  it('what a process killed with SIGKILL left (its server, its directory) is cleared by the next start', async () => {
    const killed = await runNode(['--input-type=module', '-e', CHILD, 'wait'], {
      onOutput: (output, child) => {
        if (/ready \d+/.test(output)) child.kill('SIGKILL');
      },
    });
    expect(killed.signal).toBe('SIGKILL');
    const left = leftoversOf(killed.pid);
    expect(left.dirs).toHaveLength(1);
    expect(left.processes.length).toBeGreaterThan(0);
    const next = await startEmbeddedServer({ fast: true });
    await next.stop();
    expect(leftoversOf(killed.pid)).toEqual({ dirs: [], processes: [] });
  }, 120_000);
});
