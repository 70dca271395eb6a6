import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';

export interface TestDatabases {
  desktopUrl: string;
  cloudUrl: string;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** How a fresh database is created: by default like the server's template1 (UTF8 on the test servers). */
export interface DatabaseOptions {
  /** A server encoding per side, e.g. `{ desktop: 'WIN1252' }` (created from template0 with the C locale, which fits any encoding). */
  encoding?: Partial<Record<keyof typeof SIDES, string>>;
}

const SIDES = { desktop: 'desktop', cloud: 'cloud' } as const;

function createSql(name: string, encoding: string | undefined): string {
  const base = `CREATE DATABASE ${pg.escapeIdentifier(name)}`;
  return encoding === undefined ? base : `${base} ENCODING ${pg.escapeLiteral(encoding)} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`;
}

/** Create a fresh, empty pair of databases ("desktop" and "cloud") for one test file. */
export async function createDatabases(label = 'test', options: DatabaseOptions = {}): Promise<TestDatabases & { drop(): Promise<void> }> {
  const id = `bisync_${label.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const desktopAdmin = inject('desktopAdminUrl');
  const cloudAdmin = inject('cloudAdminUrl');
  const names = { desktop: `${id}_desktop`, cloud: `${id}_cloud` };
  await adminQuery(desktopAdmin, createSql(names.desktop, options.encoding?.desktop));
  await adminQuery(cloudAdmin, createSql(names.cloud, options.encoding?.cloud));
  return {
    desktopUrl: withDatabase(desktopAdmin, names.desktop),
    cloudUrl: withDatabase(cloudAdmin, names.cloud),
    async drop() {
      await adminQuery(desktopAdmin, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(names.desktop)} WITH (FORCE)`);
      await adminQuery(cloudAdmin, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(names.cloud)} WITH (FORCE)`);
    },
  };
}

/**
 * Registers hooks that give the calling test file its own pair of fresh databases and drop them
 * afterwards. Read the URLs inside tests or hooks, after `beforeAll` has run.
 */
export function useFreshDatabases(label?: string, options?: DatabaseOptions): TestDatabases {
  const holder: TestDatabases = { desktopUrl: '', cloudUrl: '' };
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const created = await createDatabases(label, options);
    holder.desktopUrl = created.desktopUrl;
    holder.cloudUrl = created.cloudUrl;
    drop = created.drop;
  });
  afterAll(async () => {
    await drop?.();
  });
  return holder;
}

/** Run `fn` with a connected client, always closing it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Set a database's session defaults (`ALTER DATABASE … SET`), as a DBA would: every later
 * connection to it starts with them. E.g. `{ TimeZone: 'America/New_York', DateStyle: 'SQL, DMY' }`.
 */
export async function setDatabaseDefaults(url: string, settings: Readonly<Record<string, string>>): Promise<void> {
  await withClient(url, async (c) => {
    const name = (await c.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db ?? '';
    for (const [setting, value] of Object.entries(settings)) {
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} SET ${pg.escapeIdentifier(setting)} = ${pg.escapeLiteral(value)}`);
    }
  });
}
