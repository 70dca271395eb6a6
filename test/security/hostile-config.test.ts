import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { writeConfig } from '../harness/bisync.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `bisync validate --config FILE`, killed after 20 s (a config that hangs the reader must not hang the suite). */
async function validate(file: string): Promise<{ code: number | null; stderr: string; killed: boolean }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/bisync.js'), 'validate', '--config', file], { timeout: 20_000, maxBuffer: 8 * 1024 * 1024 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr, killed: error?.killed === true });
    });
  });
}

const config = (tables: string, databases = '  desktop:\n    url: postgres://office@localhost/desk\n  cloud:\n    url: postgres://postgres@localhost/cloud\n'): string => `version: 1
databases:
${databases}forward: { from: desktop, to: cloud }
tables:
${tables}`;

describe('hostile config files: exit 2 with file:line:column, never a crash, a hang or a huge read', () => {
  it('a YAML alias bomb ("billion laughs") is exit 2 at the first alias, not INTERNAL', async () => {
    const levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const file = writeConfig(`version: 1\n${levels.join('\n')}\n`);
    const result = await validate(file);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:3:`);
    expect(result.stderr).toMatch(/YAML aliases expand to more than 100 nodes/);
    expect(result.stderr).not.toMatch(/INTERNAL|at .*\.js:\d+/);
  });

  it('a NUL character in a table name is exit 2 at the name (it used to pass offline and crash --live)', async () => {
    const file = writeConfig(config('  - name: "t\\0x"\n    primary_key: [id]\n    direction: forward\n'));
    const result = await validate(file);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:9:11: tables[0].name: table name contains a NUL character`);
  });

  it('a ca file that does not exist is exit 2 at ca, not INTERNAL', async () => {
    const file = writeConfig(
      config('  - name: t\n    primary_key: [id]\n    direction: forward\n', '  desktop:\n    url: postgres://office@localhost/desk\n  cloud:\n    url: postgres://postgres@db.example.com/cloud\n    ssl: verify-full\n    ca: /nonexistent/supabase-ca.pem\n'),
    );
    const result = await validate(file);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:8:9: databases.cloud.ca: the CA certificate file "/nonexistent/supabase-ca.pem" does not exist or cannot be read`);
  });

  it('--config on a FIFO is exit 2 at once instead of waiting forever', async () => {
    const fifo = join(mkdtempSync(join(tmpdir(), 'bisync-fifo-')), 'sync.config.yaml');
    execFileSync('mkfifo', [fifo]);
    const result = await validate(fifo);
    expect(result.killed).toBe(false);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${fifo}: is not a regular file`);
  });

  it('--config /dev/zero is exit 2 without reading it, and a file over 1 MiB is refused by its size', async () => {
    const zero = await validate('/dev/zero');
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('/dev/zero: is not a regular file');
    const big = join(mkdtempSync(join(tmpdir(), 'bisync-big-')), 'sync.config.yaml');
    writeFileSync(big, `# ${'x'.repeat(2 * 1024 * 1024)}\nversion: 1\n`);
    const result = await validate(big);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${big}: is ${2 * 1024 * 1024 + 14} bytes, more than a config can be (1048576)`);
  });

  it('`true:` next to `"true":` under databases is a duplicate key, not two databases of which one silently wins', async () => {
    const file = writeConfig(`version: 1
databases:
  true:
    url: postgres://office@localhost/desk
  "true":
    url: postgres://postgres@localhost/cloud
forward: { from: "true", to: "true" }
tables:
  - name: t
    primary_key: [id]
    direction: forward
`);
    const result = await validate(file);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`${file}:5:3: YAML syntax error: Map keys must be unique`));
  });

  it('names over 63 bytes (which PostgreSQL truncates, so two can meet as one) are exit 2 at the name, bytes not characters', async () => {
    const long = `c${'x'.repeat(63)}`;
    const accented = 'é'.repeat(32); // 32 characters, 64 bytes
    const file = writeConfig(config(`  - name: t\n    primary_key: [id]\n    direction: forward\n    columns: [id, ${long}, ${accented}]\n`));
    const result = await validate(file);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:12:19: tables[0].columns[1]: column name "${long}" is 64 bytes; PostgreSQL keeps only the first 63 of a name`);
    expect(result.stderr).toContain(`tables[0].columns[2]: column name "${accented}" is 64 bytes`);
    const ok = writeConfig(config(`  - name: t\n    primary_key: [id]\n    direction: forward\n    columns: [id, ${'y'.repeat(63)}]\n`));
    expect((await validate(ok)).code).toBe(0);
  });
});
