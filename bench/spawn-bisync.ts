import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageFile } from '../src/package-root.js';
import type { RssMethod } from './bench-options.js';

const GNU_TIME = '/usr/bin/time';
const POLL_MS = 50;

/** The per-step fields of `bisync apply --json` the bench reads. */
export interface StepSummary {
  table: string;
  direction: string;
  status: string;
  mode: string;
  read: number;
  inserted: number;
  updated: number;
  deleted: number;
  rejected: number;
  conflicts: number;
  protected: number;
  durationMs: number;
  /** Round trips the step waited for, on both databases (reported by `apply --json` since issue 11). */
  roundTrips?: number;
  error?: string;
}

export interface BisyncRun {
  exitCode: number;
  /** Wall time from spawning the process to its exit. */
  seconds: number;
  /** Peak resident set size of the bisync process, in KiB (0 when it could not be read). */
  peakRssKiB: number;
  steps: StepSummary[];
  /** Rows read from F, summed over steps. */
  read: number;
  /** Rows inserted, updated or deleted on T, summed over steps. */
  written: number;
  stderrTail: string;
}

/** `time` when GNU time is at /usr/bin/time (it reports the child's ru_maxrss), else `proc`. */
export function resolveRssMethod(wanted: RssMethod | 'auto'): RssMethod {
  if (wanted === 'auto') return isGnuTime() ? 'time' : 'proc';
  if (wanted === 'time' && !isGnuTime()) throw new Error(`--rss time needs GNU time at ${GNU_TIME} (apt-get install time); use --rss proc`);
  return wanted;
}

function isGnuTime(): boolean {
  if (!existsSync(GNU_TIME)) return false;
  try {
    // busybox `time` has no -v/-o; GNU time says "time (GNU Time) …" for --version.
    return execFileSync(GNU_TIME, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('GNU Time');
  } catch (error) {
    return String((error as { stderr?: unknown }).stderr ?? '').includes('GNU Time');
  }
}

/** How the method is described in the results. */
export function describeRssMethod(method: RssMethod): string {
  return method === 'time'
    ? `\`${GNU_TIME} -v\` around the bisync process ("Maximum resident set size", the kernel's ru_maxrss of that process)`
    : `VmHWM from /proc/<pid>/status of the bisync process, polled every ${POLL_MS} ms from the bench, last value read before exit (a growth in the last ${POLL_MS} ms would be missed)`;
}

/**
 * Run `node bin/bisync.js apply … --json` as a child process, as a user would, and measure its wall
 * time and peak RSS (its own, not the bench's).
 */
export async function runBisync(args: readonly string[], env: NodeJS.ProcessEnv, method: RssMethod): Promise<BisyncRun> {
  const bin = packageFile('bin/bisync.js', import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'bisync-bench-'));
  const timeFile = join(dir, 'time.txt');
  const command = method === 'time' ? GNU_TIME : process.execPath;
  const commandArgs = method === 'time' ? ['-v', '-o', timeFile, process.execPath, bin, ...args] : [bin, ...args];
  const started = process.hrtime.bigint();
  const child = spawn(command, commandArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  let polledKiB = 0;
  const poll = method === 'proc' && child.pid !== undefined ? pollHighWaterMark(child.pid, (kib) => (polledKiB = kib)) : undefined;
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (poll !== undefined) clearInterval(poll);
  let peakRssKiB = polledKiB;
  if (method === 'time') {
    const report = await readFile(timeFile, 'utf8').catch(() => '');
    peakRssKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(report)?.[1] ?? 0);
  }
  rmSync(dir, { recursive: true, force: true });
  const steps = parseSteps(stdout);
  return {
    exitCode,
    seconds,
    peakRssKiB,
    steps,
    read: steps.reduce((n, s) => n + s.read, 0),
    written: steps.reduce((n, s) => n + s.inserted + s.updated + s.deleted, 0),
    stderrTail: stderr.slice(-4000),
  };
}

function pollHighWaterMark(pid: number, onValue: (kib: number) => void): NodeJS.Timeout {
  const read = (): void => {
    try {
      const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match?.[1] !== undefined) onValue(Number(match[1]));
    } catch {
      // the process has exited (or /proc is not there): keep the last value read
    }
  };
  read();
  return setInterval(read, POLL_MS);
}

function parseSteps(stdout: string): StepSummary[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return [];
  }
  const steps = (doc as { steps?: unknown }).steps;
  if (!Array.isArray(steps)) return [];
  const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));
  return steps.map((raw: Record<string, unknown>) => ({
    table: String(raw.table),
    direction: String(raw.direction),
    status: String(raw.status),
    mode: String(raw.mode),
    read: num(raw.read),
    inserted: num(raw.inserted),
    updated: num(raw.updated),
    deleted: num(raw.deleted),
    rejected: num(raw.rejected),
    conflicts: num(raw.conflicts),
    protected: num(raw.protected),
    durationMs: num(raw.durationMs),
    ...(typeof raw.roundTrips === 'number' ? { roundTrips: raw.roundTrips } : {}),
    ...(typeof raw.error === 'string' ? { error: raw.error } : {}),
  }));
}

/** Median wall time of `node bin/bisync.js --version` (Node start-up and module loading), over three runs. */
export async function measureStartup(): Promise<number> {
  const bin = packageFile('bin/bisync.js', import.meta.url);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [bin, '--version'], { stdio: 'ignore' });
      child.once('error', reject);
      child.once('close', () => resolve());
    });
    times.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  return times.sort((a, b) => a - b)[1] ?? 0;
}
