import { describe, expect, it } from 'vitest';
import { LinkProxy } from '../proxy/link-proxy.js';
import { apply, configHead, envFor, query, runCli, testConfig, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { createJobsSchema, jobsConfigFile, jobsConfigYaml, seedDesktop } from './jobs-fixture.js';

// SPEC §8: over a WAN every connection costs TCP, TLS and authentication round trips, and every
// statement one more. A run reuses its connections across steps, and a step's cost on the wire does
// not grow with the table.

async function throughProxies(dbs: TestDatabases, run: (proxied: TestDatabases) => Promise<void>): Promise<{ desktop: number; cloud: number }> {
  const desktop = await LinkProxy.start(dbs.desktopUrl, { rttMs: 0, bitsPerSecond: Infinity });
  const cloud = await LinkProxy.start(dbs.cloudUrl, { rttMs: 0, bitsPerSecond: Infinity });
  try {
    await run({ ...dbs, desktopUrl: desktop.url(dbs.desktopUrl), cloudUrl: cloud.url(dbs.cloudUrl) });
    return { desktop: desktop.current.connections, cloud: cloud.current.connections };
  } finally {
    await Promise.all([desktop.stop(), cloud.stop()]);
  }
}

describe('connections and round trips per run', () => {
  const dbs = useFreshDatabases('wire');

  it('a run opens at most --concurrency connections per database and reuses them across its steps', async () => {
    await createJobsSchema(dbs);
    await seedDesktop(dbs, 5, 200);
    await query(dbs.cloudUrl, `INSERT INTO client (client_id, name, source) VALUES (100001, 'phone client', 'M')`);
    for (const concurrency of [1, 2]) {
      const opened = await throughProxies(dbs, async (proxied) => {
        const config = await testConfig(jobsConfigFile(), proxied);
        const report = await apply(config, { direction: 'both', concurrency });
        expect(report.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
      });
      // Four steps, each reading one database and writing the other, plus the catalog read.
      expect(opened.desktop).toBeLessThanOrEqual(concurrency);
      expect(opened.cloud).toBeLessThanOrEqual(concurrency);
      expect(opened.desktop).toBeGreaterThanOrEqual(1);
    }
    const [row] = await query<{ n: number }>(dbs.desktopUrl, 'SELECT count(*)::int AS n FROM client WHERE client_id = 100001');
    expect(row?.n).toBe(1);
  });

  it('a run that syncs an edits: both table both ways opens at most two connections per database at --concurrency 2', async () => {
    // Two edits: both tables: their reverse steps run at the same time, each holding the forward/
    // reverse pair lock on the cloud while it writes the desktop. Rows are new and changed on both
    // sides, so both directions merge something.
    const table = (name: string, origin: string): string => `CREATE TABLE ${name} (${name}_id integer PRIMARY KEY, body text NOT NULL${origin})`;
    for (const [url, origin] of [[dbs.desktopUrl, ''], [dbs.cloudUrl, ', source char(1)']] as const) {
      await query(url, `${table('memo', origin)}; ${table('visit', origin)}`);
    }
    const tables = ['memo', 'visit'].map((name) => `  - name: ${name}\n    primary_key: [${name}_id]\n    direction: both\n    origin: { column: source, forward: D, reverse: M }\n    edits: both`);
    const file = writeConfig(`${configHead()}tables:\n${tables.join('\n')}\n`);
    const write = async (): Promise<void> => {
      for (const name of ['memo', 'visit']) {
        await query(dbs.desktopUrl, `INSERT INTO ${name} SELECT i, 'office ' || i FROM generate_series((SELECT count(*) FROM ${name})::int + 1, (SELECT count(*) FROM ${name})::int + 50) AS i`);
        await query(dbs.cloudUrl, `INSERT INTO ${name} VALUES (100000 + (SELECT count(*) FROM ${name})::int, 'phone', 'M')`);
      }
    };
    for (const round of [1, 2]) {
      await write();
      if (round === 2) await query(dbs.cloudUrl, `UPDATE memo SET body = 'phone edit' WHERE memo_id = 1; UPDATE visit SET body = 'phone edit' WHERE visit_id = 2`);
      const opened = await throughProxies(dbs, async (proxied) => {
        const report = await apply(await testConfig(file, proxied), { direction: 'both', concurrency: 2 });
        expect(report.steps.map((s) => `${s.table} ${s.direction} ${s.status}`).sort()).toEqual(['memo forward succeeded', 'memo reverse succeeded', 'visit forward succeeded', 'visit reverse succeeded']);
        expect(report.steps.filter((s) => s.direction === 'reverse').every((s) => s.inserted > 0)).toBe(true);
      });
      // Counted by the proxies: TCP connections the run opened to each server.
      expect(opened.desktop, `round ${round}: desktop`).toBeLessThanOrEqual(2);
      expect(opened.cloud, `round ${round}: cloud`).toBeLessThanOrEqual(2);
    }
    for (const name of ['memo', 'visit']) {
      const rows = async (url: string): Promise<unknown[]> => await query(url, `SELECT ${name}_id, body FROM ${name} ORDER BY 1`);
      expect(await rows(dbs.desktopUrl)).toEqual(await rows(dbs.cloudUrl));
    }
  });

  it('bisync apply at --concurrency 1 opens one connection per database: the run takes the ones it started opening while it loaded', async () => {
    const opened = await throughProxies(dbs, async (proxied) => {
      const cli = await runCli(['apply', '--config', jobsConfigFile(), '--concurrency', '1', '-q'], envFor(proxied));
      expect(cli.code, cli.stderr).toBe(0);
    });
    expect(opened).toEqual({ desktop: 1, cloud: 1 });
  });

  it('apply reports round trips and bytes per step; a no-change step costs at most 4 round trips, the same at 10 rows as at 2,000', async () => {
    const config = await testConfig(jobsConfigFile(), dbs);
    await query(dbs.desktopUrl, 'DELETE FROM job WHERE job_id > 10');
    await query(dbs.cloudUrl, 'DELETE FROM job WHERE job_id > 10');
    await apply(config, { direction: 'forward' });
    // What a no-change step costs when it runs (no probe before it: the probe would not run it at all).
    const small = (await apply(config, { direction: 'forward', tables: ['job'], probe: false })).steps[0];
    await query(dbs.desktopUrl, `INSERT INTO job (job_id, client_id, title, status) SELECT i, 1, 'job ' || i, 'open' FROM generate_series(11, 2000) i`);
    await apply(config, { direction: 'forward', tables: ['job'] });
    const large = (await apply(config, { direction: 'forward', tables: ['job'], probe: false })).steps[0];
    expect(small?.inserted).toBe(0);
    expect(large?.inserted).toBe(0);
    expect(small?.roundTrips).toBeGreaterThan(0);
    expect(large?.roundTrips).toBe(small?.roundTrips);
    expect(large?.roundTripsByDatabase).toEqual(small?.roundTripsByDatabase);
    // Statements that need no answer from one another travel together, and the two databases are
    // waited on at once: the target locks while the read opens; the COPY; the staged-row checks,
    // the merge, the guard's counters and the state while the read commits; run row and commit.
    expect(small?.roundTrips).toBeLessThanOrEqual(4);
    // Per link too: the cloud (the target of forward) and the desktop (its source).
    expect(small?.roundTripsByDatabase?.cloud).toBeLessThanOrEqual(4);
    expect(small?.roundTripsByDatabase?.desktop).toBeLessThanOrEqual(3);
    expect(large?.bytesReceived ?? 0).toBeGreaterThan(small?.bytesReceived ?? 0);
    expect(small?.bytesSent).toBeGreaterThan(0);
  });

  it('an incremental forward step whose read finds nothing sends the cloud no COPY: 3 round trips there, and a row written later still arrives', async () => {
    const yaml = jobsConfigYaml().replace('timestamps: { cloud: [updated_at, created_at] }', 'timestamps: { desktop: xmin, cloud: [updated_at, created_at] }');
    expect(yaml).toContain('desktop: xmin');
    const config = await testConfig(writeConfig(yaml), dbs);
    await apply(config, { direction: 'forward', tables: ['job'] });
    // The step runs (no probe, which would find nothing to do and not run it).
    const idle = (await apply(config, { direction: 'forward', tables: ['job'], probe: false })).steps[0];
    expect(idle?.status, idle?.error).toBe('succeeded');
    expect(idle?.reason).toMatch(/xmin on desktop/);
    expect(idle?.read).toBe(0);
    // Lock and state; the staged-row checks, the merge and the state; run row and commit. The COPY
    // FROM STDIN that would carry no row is not sent.
    expect(idle?.roundTripsByDatabase?.cloud).toBeLessThanOrEqual(3);
    await query(dbs.desktopUrl, `UPDATE job SET title = 'renamed after the idle run' WHERE job_id = 3`);
    const edited = (await apply(config, { direction: 'forward', tables: ['job'] })).steps[0];
    expect(edited?.read).toBe(1);
    expect(edited?.updated).toBe(1);
    const [row] = await query<{ title: string }>(dbs.cloudUrl, 'SELECT title FROM job WHERE job_id = 3');
    expect(row?.title).toBe('renamed after the idle run');
  });
});
