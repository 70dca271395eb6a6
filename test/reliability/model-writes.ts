import type pg from 'pg';
import type { Write, WriteKind } from './model-commands.js';
import type { Data, Model, TableName } from './model-state.js';
import { KEY_SPACE } from './model-state.js';

/**
 * How each generated write is carried out on the database it belongs to and in the model, with a
 * fallback when it has nothing to act on.
 */

/** A timestamp in µs as an exact timestamptz literal. */
export function timestampText(us: number): string {
  const seconds = Math.floor(us / 1_000_000);
  const micros = us - seconds * 1_000_000;
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
}

const CURSOR_US = `(extract(epoch FROM greatest(created_at, updated_at)) * 1000000)::bigint::text AS cursor`;

export interface Sides {
  desktop: pg.Client;
  cloud: pg.Client;
}

function pickOf<T>(items: readonly T[], pick: number): T | undefined {
  return items.length === 0 ? undefined : items[pick % items.length];
}

function freeKeys(table: TableName, taken: ReadonlyMap<number, unknown>): number[] {
  const keys: number[] = [];
  for (let k = 1; k <= KEY_SPACE[table]; k++) if (!taken.has(k)) keys.push(k);
  return keys;
}

/** New column values for a row of `table`; a job's parent comes from the clients on `side`. */
function valuesFor(model: Model, write: Write, side: 'desktop' | 'cloud', keepParent?: number): Data | undefined {
  if (write.table === 'client') return { name: write.text };
  let parent = keepParent;
  if (parent === undefined) {
    const clients = [...model[side].client.keys()].reverse();
    parent = pickOf(clients, write.parentPick);
    if (parent === undefined) return undefined;
  }
  return { client_id: parent, title: write.text, status: write.status };
}

async function desktopUpsert(client: pg.Client, table: TableName, key: number, data: Data, insert: boolean): Promise<void> {
  if (table === 'client') {
    const sql = insert ? 'INSERT INTO client (client_id, name) VALUES ($1, $2)' : 'UPDATE client SET name = $2 WHERE client_id = $1';
    const done = await client.query(sql, [key, data.name]);
    if (done.rowCount !== 1) throw new Error(`desktop ${insert ? 'insert' : 'update'} of client ${key} touched ${done.rowCount} rows`);
    return;
  }
  const sql = insert
    ? 'INSERT INTO job (job_id, client_id, title, status) VALUES ($1, $2, $3, $4)'
    : 'UPDATE job SET client_id = $2, title = $3, status = $4 WHERE job_id = $1';
  const done = await client.query(sql, [key, data.client_id, data.title, data.status]);
  if (done.rowCount !== 1) throw new Error(`desktop ${insert ? 'insert' : 'update'} of job ${key} touched ${done.rowCount} rows`);
}

/**
 * A cloud write with its own timestamp (explicit clock) or now() (server clock); returns the row's
 * cursor value as stored, in µs.
 */
async function cloudWrite(client: pg.Client, model: Model, write: Write, key: number, data: Data, how: 'insert' | 'update', source: 'D' | 'M'): Promise<number> {
  const at = model.variant.clock === 'explicit' ? timestampText(model.tick(write.gapUs)) : null;
  const cols = write.table === 'client' ? ['name'] : ['client_id', 'title', 'status'];
  const id = write.table === 'client' ? 'client_id' : 'job_id';
  const values = cols.map((c) => data[c] ?? null);
  let sql: string;
  if (how === 'insert') {
    sql = `INSERT INTO ${write.table} (${id}, ${cols.join(', ')}, source, created_at, updated_at)
           VALUES ($1, ${cols.map((_, i) => `$${i + 3}`).join(', ')}, $2, coalesce($${cols.length + 3}::timestamptz, now()), coalesce($${cols.length + 3}::timestamptz, now()))
           RETURNING ${CURSOR_US}`;
  } else {
    sql = `UPDATE ${write.table} SET ${cols.map((c, i) => `${c} = $${i + 3}`).join(', ')}, updated_at = coalesce($${cols.length + 3}::timestamptz, now())
            WHERE ${id} = $1 AND source = $2
           RETURNING ${CURSOR_US}`;
  }
  const done = await client.query<{ cursor: string }>(sql, [key, source, ...values, at]);
  const cursor = done.rows[0]?.cursor;
  if (done.rowCount !== 1 || cursor === undefined) throw new Error(`cloud ${how} of ${write.table} ${key} touched ${done.rowCount} rows`);
  return Number(cursor);
}

// What a write becomes when it has nothing to act on, so that few generated writes are wasted:
// an edit with no candidate row inserts one, an insert with no free key edits one, and a job with
// no possible parent inserts a client on that side instead.
const INSTEAD: Readonly<Record<WriteKind, WriteKind>> = {
  'desktop-insert': 'desktop-update',
  'desktop-update': 'desktop-insert',
  'desktop-edit-mobile-row': 'desktop-insert',
  'mobile-insert': 'mobile-update',
  'mobile-update': 'mobile-insert',
  'cloud-edit-desktop-row': 'mobile-update',
  'desktop-new-client-with-job': 'desktop-update',
  'mobile-new-client-with-job': 'mobile-update',
};

/**
 * Carry out one generated write on the database it belongs to and in the model (or a fallback
 * write when it has nothing to act on); returns what it did, for the failure report.
 */
export async function performWrite(sides: Sides, model: Model, write: Write, depth = 0): Promise<string> {
  const done = await attemptWrite(sides, model, write);
  if (done !== 'skipped' || depth >= 3) return done;
  const side = write.kind.startsWith('desktop') ? 'desktop' : 'cloud';
  const noParent = write.table === 'job' && model[side].client.size === 0 && !write.kind.includes('with-job');
  const instead: Write = noParent
    ? { ...write, table: 'client', kind: side === 'desktop' ? 'desktop-insert' : 'mobile-insert' }
    : { ...write, kind: INSTEAD[write.kind] };
  return await performWrite(sides, model, instead, depth + 1);
}

async function attemptWrite(sides: Sides, model: Model, write: Write): Promise<string> {
  const { table } = write;
  const desktopRows = model.desktop[table];
  const cloudRows = model.cloud[table];
  const mobileOwned = (key: number): boolean => cloudRows.get(key)?.source === 'M';
  switch (write.kind) {
    case 'desktop-insert': {
      const key = pickOf(freeKeys(table, desktopRows), write.pick);
      const data = key === undefined ? undefined : valuesFor(model, write, 'desktop');
      if (key === undefined || data === undefined) return 'skipped';
      await desktopUpsert(sides.desktop, table, key, data, true);
      desktopRows.set(key, data);
      model.desktopWritten[table].add(key);
      model.written[table].add(key);
      return `desktop inserted ${table} ${key}`;
    }
    case 'desktop-update':
    case 'desktop-edit-mobile-row': {
      const wantMobile = write.kind === 'desktop-edit-mobile-row';
      const key = pickOf([...desktopRows.keys()].sort((a, b) => a - b).filter((k) => mobileOwned(k) === wantMobile), write.pick);
      const data = key === undefined ? undefined : valuesFor(model, write, 'desktop');
      if (key === undefined || data === undefined) return 'skipped';
      await desktopUpsert(sides.desktop, table, key, data, false);
      desktopRows.set(key, data);
      model.desktopWritten[table].add(key);
      if (wantMobile) model.desktopEditedMobile[table].add(key);
      return `desktop ${wantMobile ? 'edited mobile-owned' : 'updated'} ${table} ${key}`;
    }
    case 'mobile-insert': {
      const key = pickOf(freeKeys(table, cloudRows), write.pick);
      const data = key === undefined ? undefined : valuesFor(model, write, 'cloud');
      if (key === undefined || data === undefined) return 'skipped';
      const cursor = await cloudWrite(sides.cloud, model, write, key, data, 'insert', 'M');
      cloudRows.set(key, { data, source: 'M', cursor });
      model.written[table].add(key);
      return `mobile inserted ${table} ${key}`;
    }
    case 'desktop-new-client-with-job':
    case 'mobile-new-client-with-job': {
      // A job whose parent is new: written during a run after the client step has read, it is an
      // orphan on the other side for one run (a reject), and must apply on the next.
      const kind = write.kind === 'desktop-new-client-with-job' ? 'desktop-insert' : 'mobile-insert';
      const side = kind === 'desktop-insert' ? model.desktop : model.cloud;
      if (freeKeys('client', side.client).length === 0 || freeKeys('job', side.job).length === 0) return 'skipped';
      const parent = await attemptWrite(sides, model, { ...write, kind, table: 'client' });
      const child = await attemptWrite(sides, model, { ...write, kind, table: 'job', parentPick: 0 });
      return `${parent}, ${child} (its child)`;
    }
    case 'mobile-update':
    case 'cloud-edit-desktop-row': {
      const source = write.kind === 'mobile-update' ? 'M' : 'D';
      const key = pickOf([...cloudRows.keys()].sort((a, b) => a - b).filter((k) => cloudRows.get(k)?.source === source), write.pick);
      const row = key === undefined ? undefined : cloudRows.get(key);
      // The phone may move a mobile job to another client; a desktop job edited on the cloud keeps its client.
      const keep = source === 'D' && row !== undefined && typeof row.data.client_id === 'number' ? row.data.client_id : undefined;
      const data = key === undefined ? undefined : valuesFor(model, write, 'cloud', keep);
      if (key === undefined || row === undefined || data === undefined) return 'skipped';
      const cursor = await cloudWrite(sides.cloud, model, write, key, data, 'update', source);
      cloudRows.set(key, { data, source, cursor: source === 'M' ? cursor : null });
      return `${source === 'M' ? 'mobile updated' : 'cloud edited desktop-owned'} ${table} ${key}`;
    }
  }
}
