import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { leftoversOf, passwordFiles, privateCheckout, runNode } from '../harness/leftovers.js';

// The README's first command, `npx bisync demo`, from a checkout in a private directory: as root
// (this machine's CI user) the servers run as "postgres", who cannot enter a 0700 directory.
describe('first run from a private directory', () => {
  it('the demo runs from a checkout in a 0700 directory, as root too, and leaves no data directory, password file or server behind', async () => {
    const checkout = privateCheckout();
    const passwordsBefore = passwordFiles();
    try {
      const result = await runNode([join(checkout.dir, 'bin/bisync.js'), 'demo'], { cwd: checkout.dir });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/Demo finished: every row reached the other side and nothing was lost/);
      expect(leftoversOf(result.pid)).toEqual({ dirs: [], processes: [] });
      expect(passwordFiles()).toEqual(passwordsBefore);
    } finally {
      checkout.remove();
    }
  }, 180_000);

  it('a demo whose PostgreSQL binary cannot be run fails with one line, exit 2, and leaves nothing behind', async () => {
    const checkout = privateCheckout({ initdb: 'not executable' });
    try {
      const result = await runNode([join(checkout.dir, 'bin/bisync.js'), 'demo'], { cwd: checkout.dir });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error: cannot run the embedded PostgreSQL binary \S+\/bin\/initdb: it is not executable \(mode 0644\)\n  hint: reinstall the dependencies \(npm ci\)/);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(leftoversOf(result.pid)).toEqual({ dirs: [], processes: [] });
    } finally {
      checkout.remove();
    }
  }, 120_000);
});
