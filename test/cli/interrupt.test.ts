import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { envFor, query } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, seedDesktop } from '../executor/jobs-fixture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface LogLine {
  level: number;
  msg: string;
}

/** Wait until a bisync backend on `url` waits for a lock (the step we hold up is in progress). */
async function bisyncWaitingForLock(url: string): Promise<void> {
  for (;;) {
    const rows = await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'bisync' AND wait_event_type = 'Lock'`);
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('Ctrl-C during apply', () => {
  const dbs = useFreshDatabases('interrupt');

  it('says what was committed and what was rolled back, records the interruption in runs, and exits 130', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 2, 5);
    const file = jobsConfigFile();
    // Someone holds the cloud's job table: the job step waits there, in progress, when Ctrl-C comes.
    const holder = new pg.Client({ connectionString: dbs.cloudUrl });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE job IN EXCLUSIVE MODE');
    try {
      const child = spawn(process.execPath, [join(ROOT, 'bin/bisync.js'), 'apply', '--concurrency', '1', '--log-format', 'json', '--config', file], {
        env: envFor(dbs),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

      await bisyncWaitingForLock(dbs.cloudUrl);
      child.kill('SIGINT');
      const code = await exited;

      expect(code).toBe(130);
      const lines = stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
      expect(lines.at(-1)).toMatchObject({
        level: 50,
        msg: 'bisync apply: interrupted by SIGINT: committed: client forward; rolled back: job forward; not started: client reverse, job reverse (exit 130)',
      });
      expect(stdout).toMatch(/^job\s+forward\s+interrupted/m);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    const runs = await query<{ table_name: string; status: string; error: string | null }>(dbs.cloudUrl, `SELECT table_name, status, error FROM bisync.runs ORDER BY finished_at`);
    expect(runs.map((r) => `${r.table_name} ${r.status}`)).toEqual(['client succeeded', 'job interrupted']);
    expect(await query(dbs.cloudUrl, 'SELECT count(*)::int AS n FROM job')).toEqual([{ n: 0 }]);
    expect(await query(dbs.cloudUrl, 'SELECT count(*)::int AS n FROM client')).toEqual([{ n: 2 }]);
  });
});
