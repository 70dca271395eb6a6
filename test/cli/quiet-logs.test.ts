import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { envFor, query, runCli } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

interface LogLine {
  level: number;
  msg: string;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const jsonLines = (stderr: string): LogLine[] =>
  stderr
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);

/** Run the CLI on a pseudo-terminal (util-linux `script`), as a person at a terminal would; returns what the terminal showed. */
async function onTerminal(args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const command = ['node', 'bin/bisync.js', ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return await new Promise((resolve) => {
    execFile('script', ['-qec', command, '/dev/null'], { env, cwd: ROOT }, (_error, stdout) => resolve(stdout.replace(/\x1b\[[0-9;]*m/g, '')));
  });
}

describe('log noise: an unattended run says what needs its owner, and little else', () => {
  const dbs = useFreshDatabases('quietlogs');
  let file = '';

  it('under cron (no terminal) apply logs one line per step and one final line; the summary goes to stdout only', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 6);
    file = jobsConfigFile();
    // The first night creates bisync's state on both sides (and says so); the nights after are the routine.
    expect((await runCli(['apply', '--quiet', '--table', 'client', '--config', file], envFor(dbs))).code).toBe(0);

    // --probe always: as over the internet (auto would not probe on this machine's fast link).
    const result = await runCli(['apply', '--probe', 'always', '--log-format', 'json', '--config', file], envFor(dbs));

    expect(result.code).toBe(0);
    const lines = jsonLines(result.stderr);
    expect(lines.map((l) => l.msg.replace(/ in [\d.]+ s$/, ''))).toEqual([
      // client forward ran the night before: its checksums agree, so the probe finds nothing to do (SPEC §8).
      'client forward: succeeded (full): nothing to do, not run: the probe found the checksums of its 2 rows summed alike on desktop and cloud',
      'job forward: succeeded (full): read 6, inserted 6, updated 0, unchanged 0, protected 0, rejected 0, deleted 0',
      'client reverse: succeeded (full): read 0, inserted 0, updated 0, unchanged 0, protected 0, rejected 0, deleted 0',
      'job reverse: succeeded (full): read 0, inserted 0, updated 0, unchanged 0, protected 0, rejected 0, deleted 0',
      'bisync apply: 4 steps succeeded; nothing needs you (exit 0)',
    ]);
    expect(lines.every((l) => l.level === 30)).toBe(true);
    expect(result.stdout).toMatch(/^table\s+direction\s+status/m);
    expect(result.stdout).not.toMatch(/^\{/m);
  });

  it('apply --quiet prints nothing at all when nothing needs you', async () => {
    const result = await runCli(['apply', '--quiet', '--config', file], envFor(dbs));
    expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('the final line says what needs the owner — a failed step and a rejected row — at error level, and the exit code is 1', async () => {
    await query(dbs.cloudUrl, `DO $$ BEGIN CREATE ROLE bisync_quiet_writer LOGIN PASSWORD 'qw-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await query(dbs.cloudUrl, `GRANT SELECT ON client TO bisync_quiet_writer; GRANT SELECT, INSERT, UPDATE ON job TO bisync_quiet_writer`);
    // bisync uses a state schema only when the role it connects as owns it.
    await query(dbs.cloudUrl, [`ALTER SCHEMA bisync OWNER TO bisync_quiet_writer`, ...['state', 'runs', 'rejects', 'base', 'conflicts'].map((t) => `ALTER TABLE bisync.${t} OWNER TO bisync_quiet_writer`)].join('; '));
    await query(dbs.cloudUrl, `ALTER TABLE job ADD CONSTRAINT title_not_bad CHECK (title <> 'bad')`);
    await query(dbs.desktopUrl, `INSERT INTO client (client_id, name) VALUES (3, 'new client')`);
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) VALUES (100, 1, 'bad', 'open')`);
    const url = new URL(dbs.cloudUrl);
    url.username = 'bisync_quiet_writer';
    url.password = 'qw-pw';

    const result = await runCli(['apply', '--direction', 'forward', '--quiet', '--log-format', 'json', '--config', file], { ...envFor(dbs), CLOUD_DATABASE_URL: url.toString() });

    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = jsonLines(result.stderr);
    expect(lines.every((l) => l.level >= 40)).toBe(true);
    const final = lines.at(-1);
    expect(final?.level).toBe(50);
    expect(final?.msg).toBe(
      'bisync apply: needs you: client forward failed: on cloud: permission denied for table client (role "bisync_quiet_writer"; writing needs GRANT SELECT, INSERT, UPDATE ON public.client TO "bisync_quiet_writer"); job forward: 1 row rejected (bisync rejects --table job) (exit 1)',
    );
  });

  it('on a terminal apply logs only what needs you by default, and -v adds one line per step', async () => {
    await query(dbs.cloudUrl, `ALTER TABLE job DROP CONSTRAINT title_not_bad`);
    await query(dbs.cloudUrl, [`ALTER SCHEMA bisync OWNER TO CURRENT_USER`, ...['state', 'runs', 'rejects', 'base', 'conflicts'].map((t) => `ALTER TABLE bisync.${t} OWNER TO CURRENT_USER`)].join('; '));
    await query(dbs.desktopUrl, `DELETE FROM job WHERE job_id = 100`);
    const quiet = await onTerminal(['apply', '--config', file], envFor(dbs));
    expect(quiet).toMatch(/^table\s+direction\s+status/m);
    expect(quiet).not.toMatch(/succeeded \((full|incremental)\): read/);
    expect(quiet).not.toMatch(/nothing needs you/);

    const verbose = await onTerminal(['apply', '-v', '--config', file], envFor(dbs));
    // One line per step, whether it ran or the probe found nothing for it to do.
    expect(verbose.match(/(client|job) (forward|reverse): succeeded \((full|incremental)\): (read \d+|nothing to do, not run)/g)).toHaveLength(4);
    expect(verbose).toMatch(/INFO.*bisync apply: 4 steps succeeded; nothing needs you \(exit 0\)/);
  });
});
