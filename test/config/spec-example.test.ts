import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import type { ResolvedConfig, ResolvedTable } from '../../src/config/types.js';
import { ENV, SPEC_EXAMPLE, SPEC_EXAMPLE_PATH, resolve, withTables, yaml } from './helpers.js';

function table(config: ResolvedConfig, name: string): ResolvedTable {
  const found = config.tables.find((t) => t.name === name);
  if (found === undefined) return expect.fail(`no table ${name} in ${config.tables.map((t) => t.name).join(', ')}`);
  return found;
}

describe('the SPEC §1 example config', () => {
  const config = resolve(SPEC_EXAMPLE);

  it('loads from a file without problems, naming the file as given', async () => {
    const loaded = await loadConfig(SPEC_EXAMPLE_PATH, ENV);
    expect(loaded.file).toBe(SPEC_EXAMPLE_PATH);
    expect(loaded.tables.map((t) => t.name)).toEqual(['orgmaster', 'climaster', 'jobshead', 'reminder']);
  });

  it('runs tables in `after` order, then file order', () => {
    expect(config.tables.map((t) => t.name)).toEqual(['orgmaster', 'climaster', 'jobshead', 'reminder']);
    expect(table(config, 'climaster').after).toEqual(['orgmaster']);
    expect(table(config, 'jobshead').after).toEqual(['climaster']);
    expect(table(config, 'reminder').after).toEqual([]);
    expect(config.tables.map((t) => t.fileIndex)).toEqual([0, 1, 2, 3]);
  });

  it('names forward as written and reverse as the opposite way', () => {
    expect(config.forward).toEqual({ from: 'desktop', to: 'cloud' });
    expect(config.reverse).toEqual({ from: 'cloud', to: 'desktop' });
  });

  it('keeps bisync state in the configured schema', () => {
    expect(config.stateSchema).toBe('bisync');
  });

  it('interpolates the database URLs from the environment', () => {
    expect(config.databases.desktop?.url).toBe(ENV.DESKTOP_DATABASE_URL);
    expect(config.databases.cloud?.url).toBe(ENV.CLOUD_DATABASE_URL);
    expect(config.databases.desktop).toMatchObject({ name: 'desktop', host: 'localhost', port: 5432, database: 'practice' });
    expect(config.databases.cloud).toMatchObject({ name: 'cloud', host: 'db.example.supabase.co', port: 5432, database: 'postgres' });
  });

  it('takes the explicit ssl of cloud and the local default of desktop', () => {
    expect(config.databases.cloud).toMatchObject({ ssl: 'require', sslSource: 'explicit', ca: null });
    expect(config.databases.desktop).toMatchObject({ ssl: 'disable', sslSource: 'default', ca: null });
  });

  it('merges the defaults (origin rule, lookback 5s) into every table', () => {
    for (const t of config.tables) {
      expect(t.origin, t.name).toEqual({ column: 'source', forward: 'D', reverse: 'M' });
      expect(t.lookbackSeconds, t.name).toBe(5);
    }
  });

  it('turns `both` into the steps forward then reverse, and a single direction into one step', () => {
    expect(table(config, 'orgmaster')).toMatchObject({ direction: 'forward', directions: ['forward'] });
    expect(table(config, 'climaster')).toMatchObject({ direction: 'both', directions: ['forward', 'reverse'] });
    expect(table(config, 'jobshead')).toMatchObject({ direction: 'both', directions: ['forward', 'reverse'] });
    expect(table(config, 'reminder')).toMatchObject({ direction: 'reverse', directions: ['reverse'] });
  });

  it('uses a per-database table name where one is given (reminder is mbreminder on desktop)', () => {
    expect(table(config, 'reminder').tables).toEqual({
      desktop: { schema: null, name: 'mbreminder' },
      cloud: { schema: null, name: 'reminder' },
    });
    expect(table(config, 'orgmaster').tables).toEqual({
      desktop: { schema: null, name: 'orgmaster' },
      cloud: { schema: null, name: 'orgmaster' },
    });
  });

  it('maps a renamed column (remdate on desktop is reminder_date on cloud) and keeps a shared one', () => {
    expect(table(config, 'reminder').columns).toEqual([
      { desktop: 'rem_id', cloud: 'rem_id' },
      { desktop: 'remdate', cloud: 'reminder_date' },
    ]);
    expect(table(config, 'reminder').primaryKey).toEqual([{ desktop: 'rem_id', cloud: 'rem_id' }]);
  });

  it('leaves the column list open ("the columns both sides have") when columns is not given', () => {
    expect(table(config, 'climaster').columns).toBeNull();
    expect(table(config, 'climaster').primaryKey).toEqual([{ desktop: 'client_id', cloud: 'client_id' }]);
  });

  it('writes jobshead reverse insert-only, and everything else upsert', () => {
    expect(table(config, 'jobshead').write).toEqual({ forward: 'upsert', reverse: 'insert-only' });
    for (const name of ['orgmaster', 'climaster', 'reminder']) {
      expect(table(config, name).write, name).toEqual({ forward: 'upsert', reverse: 'upsert' });
    }
  });

  it('has cursor columns only where timestamps name them; the other database is read in full', () => {
    expect(table(config, 'climaster').timestamps).toEqual({ desktop: [], cloud: ['updated_at', 'created_at'] });
    expect(table(config, 'jobshead').timestamps).toEqual({ desktop: [], cloud: ['updated_at', 'created_at'] });
    expect(table(config, 'orgmaster').timestamps).toEqual({ desktop: [], cloud: [] });
  });

  it('keeps deletes by default and defaults max_delete_fraction to 0.1', () => {
    for (const t of config.tables) {
      expect(t.deletes, t.name).toBe('keep');
      expect(t.maxDeleteFraction, t.name).toBe(0.1);
    }
  });
});

describe('defaults of the config contract', () => {
  it('lookback defaults to 5 seconds when neither defaults nor the table set it', () => {
    const config = resolve(SPEC_EXAMPLE.replace(/^ {2}lookback: 5s.*\n/m, ''));
    expect(SPEC_EXAMPLE).toMatch(/^ {2}lookback: 5s/m);
    for (const t of config.tables) expect(t.lookbackSeconds, t.name).toBe(5);
  });

  it('lookback 0s is valid and means no lookback', () => {
    const config = resolve(SPEC_EXAMPLE.replace(/^ {2}lookback: 5s/m, '  lookback: 0s'));
    for (const t of config.tables) expect(t.lookbackSeconds, t.name).toBe(0);
  });

  it('a table overrides a default, other tables keep it', () => {
    const config = resolve(
      withTables(yaml`
        - name: a
          primary_key: [id]
          lookback: 2m
          deletes: mirror
          max_delete_fraction: 0.25
        - name: b
          primary_key: [id]
      `).replace('defaults:\n', 'defaults:\n  lookback: 1h30m\n'),
    );
    expect(config.tables.map((t) => [t.name, t.lookbackSeconds, t.deletes, t.maxDeleteFraction])).toEqual([
      ['a', 120, 'mirror', 0.25],
      ['b', 5400, 'keep', 0.1],
    ]);
  });

  it('durations accept milliseconds and combined units', () => {
    const config = resolve(
      withTables(yaml`
        - name: a
          primary_key: [id]
          lookback: 500ms
        - name: b
          primary_key: [id]
          lookback: 1m30s
      `),
    );
    expect(config.tables.map((t) => t.lookbackSeconds)).toEqual([0.5, 90]);
  });

  it('the state schema defaults to bisync', () => {
    const config = resolve(SPEC_EXAMPLE.replace(/^state:\n {2}schema: bisync.*\n/m, ''));
    expect(SPEC_EXAMPLE).toMatch(/^state:\n {2}schema: bisync/m);
    expect(config.stateSchema).toBe('bisync');
  });

  it('a schema-qualified per-database table name is split into schema and table', () => {
    const config = resolve(
      withTables(yaml`
        - name: reminder
          primary_key: [rem_id]
          desktop: { table: legacy.mbreminder }
      `),
    );
    expect(config.tables[0]?.tables).toEqual({
      desktop: { schema: 'legacy', name: 'mbreminder' },
      cloud: { schema: null, name: 'reminder' },
    });
  });

  it('primary_key and timestamps set in defaults apply to every table that does not set its own', () => {
    const config = resolve(
      withTables(yaml`
        - name: a
        - name: b
          primary_key: [b_id]
      `).replace('defaults:\n', 'defaults:\n  primary_key: [id]\n  timestamps: { cloud: [updated_at] }\n'),
    );
    expect(config.tables.map((t) => [t.name, t.primaryKey, t.timestamps])).toEqual([
      ['a', [{ desktop: 'id', cloud: 'id' }], { desktop: [], cloud: ['updated_at'] }],
      ['b', [{ desktop: 'b_id', cloud: 'b_id' }], { desktop: [], cloud: ['updated_at'] }],
    ]);
  });

  it('origin: false on a one-way table turns the default origin rule off', () => {
    const config = resolve(
      withTables(yaml`
        - name: a
          primary_key: [id]
          direction: forward
          origin: false
      `),
    );
    expect(config.tables[0]?.origin).toBeNull();
  });
});
