import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reachableCopy } from '../../src/embedded/native-binaries.js';
import type { NativeBinaries } from '../../src/embedded/native-binaries.js';
import { treeReadableBy } from '../../src/embedded/reachable-by.js';

// Someone who is neither the owner nor in the group of any file here: only "other" bits apply.
const SERVER_USER = { name: 'nobody', uid: 65534, gid: 65534 };

/** A small PostgreSQL-shaped tree in a 0700 directory, installed with a 077 umask. */
function privateInstallation(): NativeBinaries {
  const parent = mkdtempSync(join(tmpdir(), 'bisync-private-'));
  const dir = join(parent, 'native');
  for (const sub of ['bin', 'lib', 'share/postgresql']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'bin/initdb'), '#!/bin/sh\n', { mode: 0o700 });
  writeFileSync(join(dir, 'bin/postgres'), '#!/bin/sh\n', { mode: 0o700 });
  writeFileSync(join(dir, 'lib/libpq.so.5.17'), 'library', { mode: 0o600 });
  symlinkSync('libpq.so.5.17', join(dir, 'lib/libpq.so.5'));
  writeFileSync(join(dir, 'share/postgresql/postgres.bki'), 'catalog', { mode: 0o600 });
  for (const sub of ['bin', 'lib', 'share/postgresql', 'share']) chmodSync(join(dir, sub), 0o700);
  return { dir, initdb: join(dir, 'bin/initdb'), postgres: join(dir, 'bin/postgres'), version: '0.0.0-test' };
}

describe('binaries the server user cannot reach are used from a readable copy', () => {
  const cache = mkdtempSync(join(tmpdir(), 'bisync-cache-'));
  chmodSync(cache, 0o755);
  afterAll(() => rmSync(cache, { recursive: true, force: true }));
  const expectedDir = join(cache, `bisync-postgres-0.0.0-test-${platform()}-${arch()}`);

  it('copies a private installation once into a cache the server user can read, keyed by package version, and repairs a damaged or foreign copy', async () => {
    const packaged = privateInstallation();
    expect(await treeReadableBy(packaged.dir, SERVER_USER)).toBe(false);

    const copy = await reachableCopy(packaged, SERVER_USER, ['/nonexistent-cache-base', cache]);
    expect(copy).toEqual({ dir: expectedDir, initdb: join(expectedDir, 'bin/initdb'), postgres: join(expectedDir, 'bin/postgres'), version: '0.0.0-test' });
    expect(await treeReadableBy(copy.dir, SERVER_USER)).toBe(true);
    const mode = (path: string): number => lstatSync(join(copy.dir, path)).mode & 0o777;
    expect([mode('.'), mode('bin'), mode('bin/initdb'), mode('bin/postgres'), mode('lib/libpq.so.5.17'), mode('share/postgresql/postgres.bki')]).toEqual([0o755, 0o755, 0o755, 0o755, 0o644, 0o644]);
    expect(readlinkSync(join(copy.dir, 'lib/libpq.so.5'))).toBe('libpq.so.5.17');

    // Used as it is the next time: the same files, not a new copy.
    const inode = statSync(copy.initdb).ino;
    await reachableCopy(packaged, SERVER_USER, [cache]);
    expect(statSync(copy.initdb).ino).toBe(inode);

    // A tmp cleaner removed a file: the copy is made again, complete.
    rmSync(join(copy.dir, 'share/postgresql/postgres.bki'));
    await reachableCopy(packaged, SERVER_USER, [cache]);
    expect(statSync(join(copy.dir, 'share/postgresql/postgres.bki')).size).toBe('catalog'.length);

    // Writable by others (anyone could have replaced a binary): not trusted, replaced.
    chmodSync(copy.dir, 0o777);
    await reachableCopy(packaged, SERVER_USER, [cache]);
    expect(mode('.')).toBe(0o755);

    // Nothing half-made stays next to it.
    expect(readdirSync(cache)).toEqual([`bisync-postgres-0.0.0-test-${platform()}-${arch()}`]);
    rmSync(join(packaged.dir, '..'), { recursive: true, force: true });
  });

  it('where no cache directory is reachable, it says so with exit 2 and what to do', async () => {
    const packaged = privateInstallation();
    try {
      await expect(reachableCopy(packaged, SERVER_USER, ['/nonexistent-cache-base'])).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringMatching(/^the user "nobody" the embedded PostgreSQL server runs as cannot read its binaries in .*, and none of \/nonexistent-cache-base is reachable/),
        hint: expect.stringMatching(/run bisync as a normal user, or from a checkout outside private directories/),
      });
    } finally {
      rmSync(join(packaged.dir, '..'), { recursive: true, force: true });
    }
  });
});
