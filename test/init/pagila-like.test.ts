import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { createPagilaLike, PAGILA_TABLES } from '../fixtures/pagila-like.js';
import { envFor, query, runCli } from '../harness/bisync.js';
import type { CliResult } from '../harness/bisync.js';
import { useFreshDatabases, withClient } from '../harness/fresh-databases.js';

interface StarterTable {
  name: string;
  primary_key: string[];
  direction: string;
  after?: string[];
  columns?: string[];
}
interface StarterFile {
  defaults: { timestamps?: Record<string, string[]> };
  tables: StarterTable[];
}
interface ApplyJson {
  steps: { table: string; direction: string; status: string; mode: string; read: number; inserted: number; updated: number; rejected: number; deleted: number }[];
}

/** The comment lines written just above a table's `- name:` line, joined. */
function commentAbove(text: string, name: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trimEnd() === `  - name: ${name}`);
  expect(at).toBeGreaterThan(0);
  let start = at;
  while (start > 0 && (lines[start - 1] ?? '').trimStart().startsWith('#')) start--;
  return lines.slice(start, at).map((l) => l.trim().replace(/^# ?/, '')).join(' ');
}

const written = (r: ApplyJson): number => r.steps.reduce((n, s) => n + s.inserted + s.updated + s.deleted, 0);

describe('a pagila-like schema (partitions, FK cycle, enum, domain, arrays, tsvector trigger, generated column, bytea, last_update triggers)', () => {
  const dbs = useFreshDatabases('pagila');
  let file = '';
  let text = '';
  let config: StarterFile;
  const table = (name: string): StarterTable => {
    const found = config.tables.find((t) => t.name === name);
    if (found === undefined) throw new Error(`no table ${name} in the starter config`);
    return found;
  };
  const cli = async (...args: string[]): Promise<CliResult> => await runCli([...args, '--config', file], envFor(dbs));
  const apply = async (): Promise<ApplyJson> => {
    const result = await cli('apply', '--json', '--log-level', 'error');
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as ApplyJson;
  };

  beforeAll(async () => {
    await withClient(dbs.desktopUrl, async (c) => await createPagilaLike(c, true));
    await withClient(dbs.cloudUrl, async (c) => await createPagilaLike(c, false));
    const dir = mkdtempSync(join(tmpdir(), 'bisync-pagila-'));
    const { BISYNC_CONFIG: _c, DESKTOP_DATABASE_URL: _d, CLOUD_DATABASE_URL: _u, ...env } = process.env;
    const result = await runCli(['init', '--desktop', dbs.desktopUrl, '--cloud', dbs.cloudUrl], env, dir);
    expect(result.code, result.stderr).toBe(0);
    file = join(dir, 'sync.config.yaml');
    text = readFileSync(file, 'utf8');
    config = parse(text) as StarterFile;
  });

  it('init derives after from foreign keys declared on the partitions of a partitioned table', () => {
    expect(config.tables.map((t) => t.name).sort()).toEqual([...PAGILA_TABLES].sort());
    // payment's foreign keys exist only on payment_p2022_01..03.
    expect([...(table('payment').after ?? [])].sort()).toEqual(['customer', 'rental', 'staff']);
    expect(table('payment').primary_key).toEqual(['payment_date', 'payment_id']);
    const order = config.tables.map((t) => t.name);
    for (const parent of ['customer', 'rental', 'staff']) expect(order.indexOf(parent)).toBeLessThan(order.indexOf('payment'));
    expect([...(table('rental').after ?? [])].sort()).toEqual(['customer', 'inventory', 'staff']);
  });

  it('init leaves out of columns what a BEFORE trigger sets on the written side, and names the trigger', () => {
    expect(table('film').columns).toEqual([
      'film_id',
      'title',
      'description',
      'release_year',
      'language_id',
      'rental_duration',
      'rental_rate',
      'length',
      'replacement_cost',
      'rating',
      'special_features',
    ]);
    for (const name of PAGILA_TABLES) expect(table(name).columns, name).not.toContain('last_update');
    const film = commentAbove(text, 'film');
    expect(film).toContain('last_update (trigger last_updated, BEFORE UPDATE) on cloud');
    expect(film).toContain('fulltext (trigger film_fulltext_trigger, BEFORE INSERT OR UPDATE) on cloud');
    // The generated column is left out too, and said so.
    expect(table('customer').columns).not.toContain('full_name');
    expect(commentAbove(text, 'customer')).toContain('full_name is a generated column');
  });

  it('init proposes last_update as the cursor on both sides, naming the trigger that keeps it', () => {
    expect(config.defaults.timestamps).toEqual({ desktop: ['last_update'], cloud: ['last_update'] });
    const doc = parseDocument(text);
    const defaults = doc.get('defaults', true) as { items: { key: { value: string; commentBefore?: string } }[] };
    const timestampsComment = defaults.items.find((p) => p.key.value === 'timestamps')?.key.commentBefore ?? '';
    expect(timestampsComment.replace(/\s*\n\s*/g, ' ')).toContain('last_update (trigger last_updated)');
  });

  it('init says where it broke the store ↔ staff cycle and why that order works', () => {
    expect(table('store').after ?? []).not.toContain('staff');
    expect(table('staff').after).toContain('store');
    const order = config.tables.map((t) => t.name);
    expect(order.indexOf('store')).toBeLessThan(order.indexOf('staff'));
    const note = commentAbove(text, 'store');
    expect(note).toContain('cycle (store → staff → store');
    expect(note).toContain('store does not wait for staff');
    expect(note).toContain('staff.store_id is NOT NULL');
    expect(note).toContain('store.manager_staff_id allows NULL');
  });

  it('validate --live passes on the config init wrote, with no warning', async () => {
    const result = await cli('validate', '--live');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/OK — 15 tables/);
  });

  it('two applies: the first copies every row of every type, the second writes 0 rows, and verify exits 0', async () => {
    const first = await apply();
    expect(first.steps.every((s) => s.status === 'succeeded' && s.rejected === 0)).toBe(true);
    const desktopRows = await query<{ n: number }>(dbs.desktopUrl, `SELECT (${PAGILA_TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(' + ')})::int AS n`);
    expect(written(first)).toBe(desktopRows[0]?.n);

    const second = await apply();
    expect(second.steps.every((s) => s.status === 'succeeded' && s.mode === 'incremental')).toBe(true);
    expect(written(second)).toBe(0);

    const verify = await cli('verify');
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain('In step: 15 tables compared, no drift.');

    // enum, domain, text[] (with quotes and commas), bytea, numeric and the partitions arrived as they are.
    const film = `SELECT film_id, rating::text, release_year, special_features, rental_rate::text FROM film ORDER BY film_id`;
    expect(await query(dbs.cloudUrl, film)).toEqual(await query(dbs.desktopUrl, film));
    const staff = `SELECT staff_id, encode(picture, 'hex') AS picture FROM staff ORDER BY staff_id`;
    expect(await query(dbs.cloudUrl, staff)).toEqual(await query(dbs.desktopUrl, staff));
    const payments = `SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM payment GROUP BY 1 ORDER BY 1`;
    expect(await query(dbs.cloudUrl, payments)).toEqual(await query(dbs.desktopUrl, payments));
    // The cloud's own trigger computed its search vector from the synced title and description; the
    // desktop keeps the one it was loaded with. fulltext is not synced, so that is not drift.
    const [vectors] = await query<{ cloud: string; desktop: string }>(
      dbs.cloudUrl,
      `SELECT fulltext::text AS cloud, to_tsvector('simple', 'FILM 3')::text AS desktop FROM film WHERE film_id = 3`,
    );
    expect(vectors?.cloud).toContain("'thought'");
    expect((await query<{ v: string }>(dbs.desktopUrl, `SELECT fulltext::text AS v FROM film WHERE film_id = 3`))[0]?.v).toBe(vectors?.desktop);
  });

  it('an edit on the desktop is written once: the cloud triggers that rewrite last_update and fulltext do not make the next run rewrite it', async () => {
    await query(dbs.desktopUrl, `UPDATE film SET title = 'FILM 7 (RESTORED)' WHERE film_id = 7`);
    const edited = await apply();
    expect(edited.steps.find((s) => s.table === 'film')?.updated).toBe(1);
    expect(written(edited)).toBe(1);
    const [cloud] = await query<{ fulltext: string }>(dbs.cloudUrl, `SELECT fulltext::text FROM film WHERE film_id = 7`);
    expect(cloud?.fulltext).toContain("'restor'");
    expect(written(await apply())).toBe(0);
    expect((await cli('verify')).code).toBe(0);
  });

  it("a store's manager assigned after the first sync arrives as an update: staff has synced by then", async () => {
    await query(dbs.desktopUrl, `UPDATE store SET manager_staff_id = store_id WHERE store_id <= 2`);
    const assigned = await apply();
    expect(assigned.steps.find((s) => s.table === 'store')).toMatchObject({ updated: 2, rejected: 0 });
    expect(written(await apply())).toBe(0);
    const managers = `SELECT store_id, manager_staff_id FROM store ORDER BY store_id`;
    expect(await query(dbs.cloudUrl, managers)).toEqual(await query(dbs.desktopUrl, managers));
  });

  it('validate --live warns about a synced column that a BEFORE trigger rewrites on the database bisync writes', async () => {
    // The same config with film's column list removed: last_update and fulltext are synced again.
    const doc = parseDocument(text);
    const tables = doc.get('tables', true) as { items: { get(k: string): unknown; delete(k: string): boolean }[] };
    tables.items.find((t) => t.get('name') === 'film')?.delete('columns');
    const handWritten = join(mkdtempSync(join(tmpdir(), 'bisync-pagila-')), 'sync.config.yaml');
    writeFileSync(handWritten, doc.toString());
    const result = await runCli(['validate', '--live', '--config', handWritten], envFor(dbs));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('2 warnings (on stderr)');
    expect(result.stderr).toContain('2 warnings against the live databases');
    expect(result.stderr).toMatch(/table "film" on cloud \(public\.film\): synced column last_update \(trigger last_updated, BEFORE UPDATE\) is set by a trigger here/);
    expect(result.stderr).toMatch(/synced column fulltext \(trigger film_fulltext_trigger, BEFORE INSERT OR UPDATE\) is set by a trigger here/);
    expect(result.stderr).toContain('Triggers on the written side');

    // What the warning is about: synced, those columns are rewritten on every run, and verify
    // reports drift right after a successful run, naming the trigger as the cause.
    for (let run = 0; run < 2; run++) {
      const full = await runCli(['apply', '--mode', 'full', '--json', '--log-level', 'error', '--config', handWritten], envFor(dbs));
      expect(full.code, full.stderr).toBe(0);
      expect((JSON.parse(full.stdout) as ApplyJson).steps.find((s) => s.table === 'film')?.updated).toBe(30);
    }
    const verify = await runCli(['verify', '--config', handWritten], envFor(dbs));
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/film \(forward; no origin rule; deletes: keep\): 30 drifted rows/);
    expect(verify.stdout).toContain('note: on cloud, synced column last_update (trigger last_updated, BEFORE UPDATE) is set by a trigger here');
  });

  it("validate --live warns when after misses a parent referenced only by a partition's foreign key", async () => {
    const doc = parseDocument(text);
    const tables = doc.get('tables', true) as { items: { get(k: string): unknown; set(k: string, v: unknown): void }[] };
    tables.items.find((t) => t.get('name') === 'payment')?.set('after', ['rental']);
    const handWritten = join(mkdtempSync(join(tmpdir(), 'bisync-pagila-')), 'sync.config.yaml');
    writeFileSync(handWritten, doc.toString());
    const result = await runCli(['validate', '--live', '--config', handWritten], envFor(dbs));
    expect(result.code).toBe(0);
    // rental runs after customer and staff, so payment (after rental) still runs after them.
    expect(result.stderr).toBe('');

    tables.items.find((t) => t.get('name') === 'payment')?.set('after', ['customer']);
    writeFileSync(handWritten, doc.toString());
    const missing = await runCli(['validate', '--live', '--config', handWritten], envFor(dbs));
    expect(missing.code).toBe(0);
    expect(missing.stderr).toMatch(/foreign key payment_p2022_01_rental_id_fkey declared on public\.payment_p2022_01 references rental, but payment does not run after it/);
    expect(missing.stderr).toMatch(/foreign key payment_p2022_01_staff_id_fkey declared on public\.payment_p2022_01 references staff/);
    expect(missing.stderr).toContain('hint: add rental to after');
    expect(missing.stderr).toContain('2 warnings');
  });
});
