import type { TestDatabases } from '../harness/fresh-databases.js';
import { withClient } from '../harness/fresh-databases.js';
import { configHead, testConfig, writeConfig } from '../harness/bisync.js';
import type { ResolvedConfig } from '../../src/config/types.js';

/**
 * A two-table slice of the users' schema, small enough to reason about row by row: clients and
 * their jobs. The desktop has no timestamps and no origin column (unless `desktopCursor`); the
 * cloud has `source`, `created_at`, `updated_at`, as in production.
 */
export async function createJobsSchema(dbs: TestDatabases, options: { desktopCursor?: boolean } = {}): Promise<void> {
  const desktopCursor = options.desktopCursor === true ? ', updated_at timestamptz NOT NULL DEFAULT now()' : '';
  await withClient(dbs.desktopUrl, async (c) => {
    await c.query(`
      CREATE TABLE client (client_id integer PRIMARY KEY, name text NOT NULL${desktopCursor});
      CREATE TABLE job (job_id integer PRIMARY KEY, client_id integer NOT NULL REFERENCES client, title text NOT NULL, status text${desktopCursor});`);
  });
  await withClient(dbs.cloudUrl, async (c) => {
    await c.query(`
      CREATE TABLE client (client_id integer PRIMARY KEY, name text NOT NULL,
        source char(1), created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE job (job_id integer PRIMARY KEY, client_id integer NOT NULL REFERENCES client, title text NOT NULL, status text,
        source char(1), created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());`);
  });
}

export interface JobsConfigOptions {
  lookback?: string;
  desktopCursor?: boolean;
  /** `timestamps: { desktop: xmin }`: the desktop read by row xmin (SPEC §8). */
  desktopXmin?: boolean;
  jobExtra?: string;
  /** Extra YAML lines for the client table (indented 4 spaces), e.g. `    deletes: mirror`. */
  clientExtra?: string;
}

/** The YAML of the jobs slice: both tables synced both ways, origin rule source D/M. */
export function jobsConfigYaml(options: JobsConfigOptions = {}): string {
  const desktop = options.desktopCursor === true ? 'desktop: [updated_at], ' : options.desktopXmin === true ? 'desktop: xmin, ' : '';
  const timestamps = `{ ${desktop}cloud: [updated_at, created_at] }`;
  return `
${configHead()}defaults:
  origin: { column: source, forward: D, reverse: M }
  timestamps: ${timestamps}
  lookback: ${options.lookback ?? '5s'}
tables:
  - name: client
    primary_key: [client_id]
    direction: both
${options.clientExtra ?? ''}
  - name: job
    primary_key: [job_id]
    direction: both
    after: [client]
${options.jobExtra ?? ''}
`;
}

/** The jobs slice config written to a fresh temp file (for the CLI); returns its path. */
export function jobsConfigFile(options: JobsConfigOptions = {}): string {
  return writeConfig(jobsConfigYaml(options));
}

/** The jobs slice config, loaded with the test databases' URLs. */
export async function jobsConfig(dbs: TestDatabases, options: JobsConfigOptions = {}): Promise<ResolvedConfig> {
  return await testConfig(jobsConfigFile(options), dbs);
}

/** Insert desktop clients 1..n and jobs 1..m (job i belongs to client 1 + i % n). */
export async function seedDesktop(dbs: TestDatabases, clients: number, jobs: number): Promise<void> {
  await withClient(dbs.desktopUrl, async (c) => {
    await c.query(`INSERT INTO client (client_id, name) SELECT i, 'client ' || i FROM generate_series(1, $1::int) i`, [clients]);
    await c.query(
      `INSERT INTO job (job_id, client_id, title, status) SELECT i, 1 + i % $1::int, 'job ' || i, 'open' FROM generate_series(1, $2::int) i`,
      [clients, jobs],
    );
  });
}
