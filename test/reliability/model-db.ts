import type pg from 'pg';
import type { ResolvedConfig } from '../../src/config/types.js';
import type { TestDatabases } from '../harness/fresh-databases.js';
import { jobsConfig } from '../executor/jobs-fixture.js';
import type { Data, Model, TableName, Variant } from './model-state.js';
import { TABLES, stepKey } from './model-state.js';

/**
 * The real side of the model test: configs per variant, a reset between fast-check runs (one
 * database pair per file), and snapshots of both databases in the same shape as the model's.
 */

export interface SideSnapshot {
  client: Record<number, Record<string, unknown>>;
  job: Record<number, Record<string, unknown>>;
}

export interface RejectRow {
  table: string;
  direction: string;
  key: string;
  reason: string;
  error_code: string | null;
  row: Record<string, string | null>;
}

export interface Snapshot {
  desktop: SideSnapshot;
  cloud: SideSnapshot;
  /** Both sides' rejects (forward's live on the cloud, reverse's on the desktop), sorted. */
  rejects: RejectRow[];
}

const COLUMNS: Readonly<Record<TableName, readonly string[]>> = { client: ['name'], job: ['client_id', 'title', 'status'] };
const KEY: Readonly<Record<TableName, string>> = { client: 'client_id', job: 'job_id' };

const configs = new Map<string, ResolvedConfig>();

/** The jobs-fixture config for one variant (written once per variant and file). */
export async function configFor(dbs: TestDatabases, variant: Variant): Promise<ResolvedConfig> {
  const id = `${variant.lookback}/${variant.reverseJob}/${variant.desktopXmin === true ? 'xmin' : 'full'}/${variant.compare}`;
  let config = configs.get(id);
  if (config === undefined) {
    const compare = variant.compare === 'full' ? '    compare: full\n' : '';
    config = await jobsConfig(dbs, {
      lookback: variant.lookback,
      desktopXmin: variant.desktopXmin === true,
      jobExtra: `${compare}${variant.reverseJob === 'insert-only' ? '    reverse: { write: insert-only }' : ''}`,
      clientExtra: compare,
    });
    configs.set(id, config);
  }
  return config;
}

async function stateExists(client: pg.Client): Promise<boolean> {
  const found = await client.query<{ ok: boolean }>(`SELECT to_regclass('bisync.state') IS NOT NULL AS ok`);
  return found.rows[0]?.ok === true;
}

/** Empty the user tables and bisync's state on both sides (DELETE, test code only). */
export async function resetDatabases(clients: readonly pg.Client[]): Promise<void> {
  for (const client of clients) {
    await client.query('DELETE FROM job; DELETE FROM client');
    if (await stateExists(client)) await client.query('DELETE FROM bisync.state; DELETE FROM bisync.runs; DELETE FROM bisync.rejects; DELETE FROM bisync.base; DELETE FROM bisync.conflicts');
  }
}

async function readSide(client: pg.Client, cloud: boolean): Promise<SideSnapshot> {
  const out: SideSnapshot = { client: {}, job: {} };
  for (const table of TABLES) {
    const extra = cloud ? `, source, CASE WHEN source = 'M' THEN (extract(epoch FROM greatest(created_at, updated_at)) * 1000000)::bigint::text END AS cursor` : '';
    const rows = await client.query<Record<string, unknown>>(`SELECT ${KEY[table]} AS key, ${COLUMNS[table].join(', ')}${extra} FROM ${table} ORDER BY 1`);
    for (const row of rows.rows) {
      const { key, cursor, ...rest } = row;
      out[table][Number(key)] = cloud ? { ...rest, cursor: cursor === null || cursor === undefined ? null : Number(cursor) } : rest;
    }
  }
  return out;
}

async function readRejects(client: pg.Client): Promise<RejectRow[]> {
  if (!(await stateExists(client))) return [];
  const rows = await client.query<{ table_name: string; direction: string; key: Record<string, string>; reason: string; error_code: string | null; row_data: Record<string, string | null> }>(
    'SELECT table_name, direction, key, reason, error_code, row_data FROM bisync.rejects',
  );
  return rows.rows.map((r) => ({
    table: r.table_name,
    direction: r.direction,
    key: JSON.stringify(r.key),
    reason: r.reason,
    error_code: r.error_code,
    row: r.row_data,
  }));
}

const byReject = (a: RejectRow, b: RejectRow): number =>
  `${a.table}/${a.direction}/${a.key}`.localeCompare(`${b.table}/${b.direction}/${b.key}`);

/** What both databases hold now. */
export async function snapshot(desktop: pg.Client, cloud: pg.Client): Promise<Snapshot> {
  return {
    desktop: await readSide(desktop, false),
    cloud: await readSide(cloud, true),
    rejects: [...(await readRejects(desktop)), ...(await readRejects(cloud))].sort(byReject),
  };
}

const asText = (v: string | number | null | undefined): string | null => (v === null || v === undefined ? null : String(v));

/** What the model says both databases hold, in the snapshot's shape. */
export function expectedSnapshot(model: Model): Snapshot {
  const desktop: SideSnapshot = { client: {}, job: {} };
  const cloud: SideSnapshot = { client: {}, job: {} };
  const rejects: RejectRow[] = [];
  for (const table of TABLES) {
    for (const key of [...model.desktop[table].keys()].sort((a, b) => a - b)) desktop[table][key] = { ...model.desktop[table].get(key) };
    for (const key of [...model.cloud[table].keys()].sort((a, b) => a - b)) {
      const row = model.cloud[table].get(key);
      if (row !== undefined) cloud[table][key] = { ...row.data, source: row.source, cursor: row.source === 'M' ? row.cursor : null };
    }
    for (const direction of ['forward', 'reverse'] as const) {
      for (const [key, reject] of model.rejects.get(stepKey(table, direction)) ?? []) {
        const row: Record<string, string | null> = { [KEY[table]]: String(key) };
        for (const column of COLUMNS[table]) row[column] = asText((reject.data as Data)[column]);
        rejects.push({
          table,
          direction,
          key: JSON.stringify({ [KEY[table]]: String(key) }),
          reason: reject.reason,
          error_code: reject.reason === 'error' ? '23503' : null,
          row,
        });
      }
    }
  }
  return { desktop, cloud, rejects: rejects.sort(byReject) };
}

/** Keys parked in the desktop's conflicts table, as `table/key`, sorted. */
export async function parkedOnDesktop(desktop: pg.Client): Promise<string[]> {
  if (!(await stateExists(desktop))) return [];
  const rows = await desktop.query<{ k: string }>(`SELECT table_name || '/' || (key ->> 0) AS k FROM bisync.conflicts WHERE kind = 'insert-insert'`);
  return rows.rows.map((r) => r.k).sort();
}

/** Reverse watermarks stored on the desktop, in µs (null when none). */
export async function reverseWatermarks(desktop: pg.Client): Promise<Record<TableName, number | null>> {
  const out: Record<TableName, number | null> = { client: null, job: null };
  if (!(await stateExists(desktop))) return out;
  const rows = await desktop.query<{ table_name: string; wm: string | null }>(
    `SELECT table_name, (extract(epoch FROM watermark) * 1000000)::bigint::text AS wm FROM bisync.state WHERE direction = 'reverse'`,
  );
  for (const r of rows.rows) if (r.table_name === 'client' || r.table_name === 'job') out[r.table_name] = r.wm === null ? null : Number(r.wm);
  return out;
}

/** Forward watermarks on the cloud: the desktop has no cursor columns, so these must stay NULL. */
export async function forwardWatermarks(cloud: pg.Client): Promise<(string | null)[]> {
  if (!(await stateExists(cloud))) return [];
  const rows = await cloud.query<{ watermark: string | null }>(`SELECT watermark::text FROM bisync.state WHERE direction = 'forward'`);
  return rows.rows.map((r) => r.watermark);
}

/** max(greatest(updated_at, created_at)) over the mobile-owned rows on the cloud, in µs. */
export async function maxMobileCursor(cloud: pg.Client, table: TableName): Promise<number | null> {
  const rows = await cloud.query<{ m: string | null }>(
    `SELECT (extract(epoch FROM max(greatest(updated_at, created_at))) * 1000000)::bigint::text AS m FROM ${table} WHERE source = 'M'`,
  );
  const m = rows.rows[0]?.m;
  return m === null || m === undefined ? null : Number(m);
}

export interface RunRow {
  run_id: string;
  table_name: string;
  direction: string;
  status: string;
  attempt: number;
}

/** Every row of `<state>.runs` on one side. */
export async function runsOn(client: pg.Client): Promise<RunRow[]> {
  if (!(await stateExists(client))) return [];
  return (await client.query<RunRow>('SELECT run_id::text, table_name, direction, status, attempt FROM bisync.runs')).rows;
}
