import pg from 'pg';
import { SAMPLE_TABLES, sampleColumns } from '../test/fixtures/sample-dataset.js';
import { BENCH_KEY_BASE, withClient } from './bench-databases.js';

/** The share of rows the incremental cases change. */
export const CHANGE_FRACTION = 0.01;

/**
 * A change per desktop table that always yields a different value (toggle, step, suffix), on a
 * column that is neither key nor foreign key, so forward must update exactly the edited rows.
 */
const DESKTOP_EDITS: Readonly<Record<string, string>> = {
  orgmaster: 'is_active = NOT is_active',
  locmaster: 'is_head_office = NOT is_head_office',
  conmaster: 'sort_order = (sort_order + 1) % 1000',
  climaster: 'is_active = NOT is_active',
  mbstaff: 'is_active = NOT is_active',
  taskmaster: 'is_billable = NOT is_billable',
  jobmaster: 'is_active = NOT is_active',
  cliunimaster: "address = CASE WHEN address IS NULL THEN 'edited' ELSE NULL END",
  jobshead: 'fee = CASE WHEN fee >= 1000000 THEN fee - 1 ELSE fee + 1 END',
  jobtasks: "status = CASE status WHEN 'Done' THEN 'Pending' ELSE 'Done' END",
  taskchecklist: 'is_mandatory = NOT is_mandatory',
  workdiary: 'billable = NOT billable',
  reminder: 'is_done = NOT is_done',
  remdetail: 'remind_before_days = ((remind_before_days + 1) % 15)::smallint',
  learequest: "status = CASE status WHEN 'approved' THEN 'pending' ELSE 'approved' END",
};

const ident = (name: string): string => pg.escapeIdentifier(name);

function spec(name: string): (typeof SAMPLE_TABLES)[number] {
  const t = SAMPLE_TABLES.find((s) => s.name === name);
  if (t === undefined) throw new Error(`unknown sample table ${name}`);
  return t;
}

const share = (rows: number, fraction = CHANGE_FRACTION): number => Math.max(1, Math.round(rows * fraction));

/**
 * Edit `fraction` (default 1%) of the rows (at least one) of each desktop table, the first ones by
 * key among those the desktop created; returns how many rows changed.
 */
export async function editDesktopRows(desktopUrl: string, tables: readonly string[], fraction = CHANGE_FRACTION): Promise<number> {
  return await editRows(desktopUrl, 'desktop', tables, fraction);
}

/**
 * Edit `fraction` (default 1%) of the rows (at least one) of each cloud table as the phone would
 * (updated_at = the edit time), the LAST ones by key among the rows the desktop created, so they
 * are not the rows `editDesktopRows` changes (no conflict): with `edits: both` each must travel
 * down to the desktop. Returns how many rows changed.
 */
export async function editCloudRows(cloudUrl: string, tables: readonly string[], fraction = CHANGE_FRACTION): Promise<number> {
  return await editRows(cloudUrl, 'cloud', tables, fraction);
}

async function editRows(url: string, side: 'desktop' | 'cloud', tables: readonly string[], fraction: number): Promise<number> {
  return await withClient(url, async (c) => {
    let changed = 0;
    for (const name of tables) {
      const t = spec(name);
      const edit = DESKTOP_EDITS[name];
      if (edit === undefined) throw new Error(`the bench has no edit for table ${name}`);
      const key = ident(t.primaryKey[0] ?? '');
      const table = `public.${ident(side === 'desktop' ? t.desktopTable : t.cloudTable)}`;
      const total = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${key} < $1`, [BENCH_KEY_BASE])).rows[0]?.n ?? 0);
      const chosen =
        side === 'desktop'
          ? `SELECT ${key} FROM ${table} WHERE ${key} < $1 ORDER BY ${key} LIMIT $2`
          : `SELECT ${key} FROM ${table} WHERE ${key} < $1 AND source = 'D' ORDER BY ${key} DESC LIMIT $2`;
      const set = side === 'desktop' ? edit : `${edit}, updated_at = clock_timestamp()`;
      const result = await c.query(`UPDATE ${table} SET ${set} WHERE ${key} IN (${chosen})`, [BENCH_KEY_BASE, share(total, fraction)]);
      changed += result.rowCount ?? 0;
    }
    return changed;
  });
}

/**
 * Insert rows on the cloud as the mobile app would: source 'M', created_at = updated_at = the
 * insert time (shifted by `ageSeconds` into the past), 1% of each table's rows, cloned from the
 * first desktop-owned rows (so their foreign keys point at rows both sides have) under new keys
 * from `keyBase` up. Returns how many rows were inserted.
 */
export async function insertMobileRows(cloudUrl: string, tables: readonly string[], keyBase: number, ageSeconds: number): Promise<number> {
  return await withClient(cloudUrl, async (c) => {
    let inserted = 0;
    for (const name of tables) {
      const t = spec(name);
      const keyName = t.primaryKey[0] ?? '';
      const key = ident(keyName);
      const others = sampleColumns(name).map((col) => col.cloud).filter((col) => col !== keyName).map(ident);
      const table = `public.${ident(t.cloudTable)}`;
      const total = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${key} < $1`, [BENCH_KEY_BASE])).rows[0]?.n ?? 0);
      const result = await c.query(
        `INSERT INTO ${table} (${key}, ${others.join(', ')}, source, created_at, updated_at)
         SELECT $1 + row_number() OVER (ORDER BY s.${key}), ${others.map((o) => `s.${o}`).join(', ')}, 'M',
                clock_timestamp() - make_interval(secs => $3), clock_timestamp() - make_interval(secs => $3)
           FROM (SELECT * FROM ${table} WHERE ${key} < $4 AND source = 'D' ORDER BY ${key} LIMIT $2) AS s`,
        [keyBase, share(total), ageSeconds, BENCH_KEY_BASE],
      );
      inserted += result.rowCount ?? 0;
    }
    return inserted;
  });
}
