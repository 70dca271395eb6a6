import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Something an embedded server leaves on the machine until it is stopped: a directory, maybe a process. */
interface Leftover {
  readonly path: string;
  server?: ChildProcess;
  /** The orderly way to stop and remove it (used on a signal); defaults to removing the directory. */
  stop?: () => Promise<void>;
}

const leftovers = new Set<Leftover>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Remember a directory (and later its server process) so that it goes away however the process ends:
 * normal end (the owner calls the returned `release` after removing it), a signal (stopped in order,
 * then the signal takes its course), or `process.exit()`/an uncaught exception (killed and removed
 * synchronously in the `exit` event). Only a SIGKILL of this process escapes.
 */
export function leaveNothingBehind(path: string): { attach(server: ChildProcess, stop: () => Promise<void>): void; release(): void } {
  const leftover: Leftover = { path };
  if (leftovers.size === 0) install();
  leftovers.add(leftover);
  return {
    attach(server, stop) {
      leftover.server = server;
      leftover.stop = stop;
    },
    release() {
      leftovers.delete(leftover);
      if (leftovers.size === 0) uninstall();
    },
  };
}

function install(): void {
  // First in line: an earlier 'exit' listener may call process.exit() again, which ends the process
  // on the spot (vitest's does); and the signal count below must still include once() handlers.
  process.prependListener('exit', removeNow);
  for (const signal of SIGNALS) process.prependListener(signal, onSignal);
}

function uninstall(): void {
  process.off('exit', removeNow);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

let signalled = false;

/** Stop every server in order; if nobody else handles the signal, let it end the process as it would have. */
function onSignal(signal: NodeJS.Signals): void {
  const alone = process.listenerCount(signal) === 1;
  if (signalled) return;
  signalled = true;
  const servers = [...leftovers].filter((l) => l.stop !== undefined);
  const dirs = [...leftovers].filter((l) => l.stop === undefined);
  // Servers first: a directory may hold a server's directory (a test run's temp directory does).
  void Promise.all(servers.map(async (l) => await l.stop?.().catch(() => undefined)))
    .then(async () => await Promise.all(dirs.map(async (l) => await rm(l.path, { recursive: true, force: true }).catch(() => undefined))))
    .finally(() => {
      signalled = false;
      if (!alone) return;
      removeNow();
      uninstall();
      process.kill(process.pid, signal);
    });
}

/** The last resort, synchronous: immediate shutdown of each server, wait for it, remove its directory. */
function removeNow(): void {
  // Servers first: a directory may hold a server's directory (a test run's temp directory does).
  for (const leftover of [...leftovers].sort((a, b) => Number(b.server !== undefined) - Number(a.server !== undefined))) {
    const server = leftover.server;
    if (server?.pid !== undefined && server.exitCode === null && server.signalCode === null) {
      try {
        server.kill('SIGQUIT');
      } catch {
        // already gone
      }
      waitUntilGone(server.pid, 10_000);
    }
    try {
      rmSync(leftover.path, { recursive: true, force: true, maxRetries: 5 });
    } catch {
      // nothing more can be done while exiting
    }
  }
  leftovers.clear();
}

/** Block until process `pid` has exited (a zombie counts: it holds no files), at most `ms`. */
function waitUntilGone(pid: number, ms: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < ms; waited += 10) {
    const state = processState(pid);
    if (state === undefined || state.startsWith('Z') || state.startsWith('X')) return;
    Atomics.wait(tick, 0, 0, 10);
  }
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && process.platform === 'linux') return undefined;
  }
  const ps = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' });
  const state = ps.stdout?.trim() ?? '';
  return state === '' ? undefined : state;
}

/**
 * Remove what a process killed outright (`kill -9`, the OOM killer) left in `base`: directories named
 * `<prefix><pid>-…` whose pid is gone, after an immediate shutdown of a server still running in one.
 * Best effort, and only where the owner is certainly gone (a live pid, even a reused one, is left alone).
 */
export async function sweepAbandoned(base: string, prefixes: readonly string[]): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names) {
    const prefix = prefixes.find((p) => name.startsWith(p));
    const owner = prefix === undefined ? undefined : Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (owner === undefined || !Number.isInteger(owner) || owner === process.pid || alive(owner)) continue;
    const dir = join(base, name);
    const server = await leftoverServer(dir);
    if (server !== undefined) {
      try {
        process.kill(server, 'SIGQUIT');
      } catch {
        continue; // not ours to stop: leave the directory too
      }
      for (let waited = 0; waited < 10_000 && alive(server); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of a postmaster still running on `dir` (its command line names the directory), if any. */
async function leftoverServer(dir: string): Promise<number | undefined> {
  for (const file of [join(dir, 'data', 'postmaster.pid'), join(dir, 'postmaster.pid')]) {
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) return pid;
  }
  return undefined;
}
