import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const ESC = '\u001b';
// A table name that would retitle the terminal and clear the screen if printed raw.
const ESCAPING = `evil${ESC}]0;pwned\u0007${ESC}[2J`;
const HOSTILE_TABLES = ['${CLOUD_DATABASE_URL}', 'price$$hist', 'true', 'a"b: c', ESCAPING];

describe('init writes hostile catalog names so that they read back as themselves', () => {
  const dbs = useFreshDatabases('inithostile');
  let out = '';
  let initResult: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) {
      for (const name of HOSTILE_TABLES) {
        const quoted = `"${name.replace(/"/g, '""')}"`;
        await query(url, `CREATE TABLE ${quoted} (id integer PRIMARY KEY, "cost$$usd" numeric, "$${'{'}HOME}" text)`);
      }
    }
    // Only on the desktop, so init names it in its report.
    await query(dbs.desktopUrl, `CREATE TABLE "only${ESC}[2Jhere" (id integer PRIMARY KEY)`);
    out = join(mkdtempSync(join(tmpdir(), 'bisync-init-')), 'sync.config.yaml');
    initResult = await runCli(['init', '--out', out], envFor(dbs));
  });

  it('a table named ${CLOUD_DATABASE_URL}, price$$hist, true or with quotes and a colon round-trips through init → validate, and no URL is printed', async () => {
    expect(initResult.code).toBe(0);
    const validated = await runCli(['validate', '--json', '--config', out], envFor(dbs));
    expect(validated.code).toBe(0);
    const doc = JSON.parse(validated.stdout) as { tables: { name: string }[] };
    expect(doc.tables.map((t) => t.name).sort()).toEqual([...HOSTILE_TABLES].sort());
    const text = await runCli(['validate', '--live', '--config', out], envFor(dbs));
    expect(text.code).toBe(0);
    const cloudPassword = new URL(dbs.cloudUrl).password;
    for (const r of [validated, text]) expect(`${r.stdout}${r.stderr}`).not.toContain(cloudPassword);
    // The column names with $ came back exactly too: the plan reads them.
    const plan = await runCli(['plan', '--format', 'json', '--config', out], envFor(dbs));
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('cost$$usd');
    expect(plan.stdout).toContain('${HOME}');
  });

  it('names with terminal escape sequences are printed escaped by init (the file keeps them exactly)', () => {
    expect(initResult.stdout + initResult.stderr).not.toContain(ESC);
    expect(initResult.stdout).toContain('only on desktop: only\\u001b[2Jhere');
    expect(readFileSync(out, 'utf8')).toContain('evil\\e]0;pwned\\a\\e[2J');
  });
});

describe('terminal escapes stored in runs.error are printed escaped by status', () => {
  const dbs = useFreshDatabases('termstatus');

  it('an error text holding escape sequences (e.g. from a server message) reaches the terminal as \\u001b…', async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) await query(url, 'CREATE TABLE t (id integer PRIMARY KEY, v text)');
    const config = join(mkdtempSync(join(tmpdir(), 'bisync-term-')), 'sync.config.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(config, 'version: 1\ndatabases:\n  desktop:\n    url: ${DESKTOP_DATABASE_URL}\n  cloud:\n    url: ${CLOUD_DATABASE_URL}\nforward: { from: desktop, to: cloud }\ntables:\n  - name: t\n    primary_key: [id]\n    direction: forward\n');
    expect((await runCli(['apply', '--config', config, '--log-level', 'error'], envFor(dbs))).code).toBe(0);
    await query(dbs.cloudUrl, `UPDATE bisync.runs SET status = 'failed', error = $1`, [`boom ${ESC}[2J${ESC}]0;owned\u0007`]);
    const status = await runCli(['status', '--config', config], envFor(dbs));
    expect(status.stdout).toContain('boom \\u001b[2J');
    expect(status.stdout + status.stderr).not.toContain(ESC);
  });
});

describe('a password on the command line', () => {
  const dbs = useFreshDatabases('initpw');

  it('init --desktop/--cloud with a password warns that every local user can read it in the process list, and never prints it', async () => {
    for (const url of [dbs.desktopUrl, dbs.cloudUrl]) await query(url, 'CREATE TABLE t (id integer PRIMARY KEY)');
    const out = join(mkdtempSync(join(tmpdir(), 'bisync-initpw-')), 'sync.config.yaml');
    const result = await runCli(['init', '--desktop', dbs.desktopUrl, '--cloud', dbs.cloudUrl, '--out', out, '--log-format', 'json'], { ...process.env });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/--desktop holds a password, which every user of this machine can read in the process list/);
    expect(result.stderr).toMatch(/set DESKTOP_DATABASE_URL in the environment instead/);
    expect(result.stderr).toMatch(/--cloud holds a password/);
    expect(result.stdout + result.stderr).not.toContain(new URL(dbs.desktopUrl).password);
  });
});
