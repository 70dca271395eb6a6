import { constants, type Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RunAs } from './postgres-user.js';

/**
 * Whether a process running as `user` may use these mode bits. A child spawned with a uid and gid
 * has no supplementary groups (libuv calls setgroups(0)), so owner, group, other is exact.
 */
function allows(st: Stats, user: RunAs, want: 'r' | 'x' | 'rx'): boolean {
  const shift = st.uid === user.uid ? 6 : st.gid === user.gid ? 3 : 0;
  const bits = (st.mode >> shift) & 0o7;
  const needed = (want.includes('r') ? 4 : 0) | (want.includes('x') ? 1 : 0);
  return (bits & needed) === needed;
}

/** Whether `user` can reach `path`: every directory above it (and it) can be traversed. */
export async function traversableBy(path: string, user: RunAs): Promise<boolean> {
  for (let dir = path; ; dir = dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    if (st === undefined || !allows(st, user, 'x')) return false;
    if (dirname(dir) === dir) return true;
  }
}

/** Whether `user` can reach `root` and read everything under it (and run what is executable). */
export async function treeReadableBy(root: string, user: RunAs): Promise<boolean> {
  if (!(await traversableBy(root, user))) return false;
  const walk = async (dir: string): Promise<boolean> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) continue; // the target is checked on its own
      const st = await lstat(path);
      if (entry.isDirectory()) {
        if (!allows(st, user, 'rx') || !(await walk(path))) return false;
      } else if (!allows(st, user, (st.mode & constants.S_IXUSR) !== 0 ? 'rx' : 'r')) {
        return false;
      }
    }
    return true;
  };
  const top = await stat(root);
  return allows(top, user, 'rx') && (await walk(root));
}
