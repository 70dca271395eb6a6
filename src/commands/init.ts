import { access, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { databaseFromUrl, describeDatabase, isLocalHost } from '../config/database-url.js';
import type { ResolvedDatabase } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';
import { connect } from '../executor/connect.js';
import { listTables } from '../executor/list-tables.js';
import { readOnly } from '../executor/read-only.js';
import type { DatabaseListing } from '../compiler/catalog.js';
import type { Side } from '../init/propose-tables.js';
import { INIT_STATE_SCHEMA, starterConfig } from '../init/starter-config.js';
import { packageFile } from '../package-root.js';
import type { StarterConfig } from '../init/starter-config.js';

export interface InitOptions {
  /** Connection URLs; they are only used to connect, never written anywhere. */
  readonly urls: Readonly<Record<Side, string>>;
  /** The file to write, as the user named it. */
  readonly out: string;
  readonly force: boolean;
  readonly logger: Logger;
}

export interface InitReport {
  readonly file: string;
  readonly databases: { readonly name: Side; readonly host: string; readonly port: number; readonly database: string; readonly serverVersion: number }[];
  readonly tables: StarterConfig['tables'];
  readonly skipped: StarterConfig['skipped'];
  readonly onlyOn: StarterConfig['onlyOn'];
  readonly guesses: number;
}

/**
 * `bisync init`: read the catalogs of both databases (READ ONLY transactions, no rows) and write a
 * starter config to `out`, refusing to replace an existing file unless `force`.
 */
export async function initCommand(options: InitOptions): Promise<InitReport> {
  const databases = {
    desktop: resolveUrl('desktop', options.urls.desktop),
    cloud: resolveUrl('cloud', options.urls.cloud),
  };
  if (!options.force && (await exists(options.out))) throw fileExists(options.out);

  const listings = {} as Record<Side, DatabaseListing>;
  for (const side of ['desktop', 'cloud'] as const) {
    const db = databases[side];
    options.logger.info({ database: describeDatabase(db) }, 'reading the catalog');
    listings[side] = await readListing(db);
  }

  const config = starterConfig(listings, schemaRef(options.out), { desktop: !isLocalHost(databases.desktop.host), cloud: !isLocalHost(databases.cloud.host) });
  if (config.tables.length === 0) {
    const reasons = [
      ...config.skipped.map((s) => `${s.name}: ${s.reason}`),
      ...(['desktop', 'cloud'] as const).filter((s) => config.onlyOn[s].length > 0).map((s) => `only on ${s}: ${config.onlyOn[s].join(', ')}`),
    ];
    throw new BisyncError('INIT_NOTHING_TO_SYNC', 'no table exists on both databases with a key bisync can use, so there is no config to write', {
      exitCode: ExitCode.usage,
      hint: reasons.length === 0 ? 'both databases have no user tables: check the URLs point at the right databases' : reasons.join('; '),
    });
  }

  try {
    // `wx` fails if the file appeared since the check above: never replace a file without --force.
    await writeFile(options.out, config.text, { encoding: 'utf8', flag: options.force ? 'w' : 'wx' });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') throw fileExists(options.out);
    throw new BisyncError('INIT_UNWRITABLE', `${options.out}: cannot be written`, {
      exitCode: ExitCode.usage,
      hint: 'check that the directory exists and is writable, or pass --out FILE',
      cause,
    });
  }
  return {
    file: options.out,
    databases: (['desktop', 'cloud'] as const).map((side) => ({
      name: side,
      host: databases[side].host,
      port: databases[side].port,
      database: databases[side].database,
      serverVersion: listings[side].serverVersion,
    })),
    tables: config.tables,
    skipped: config.skipped,
    onlyOn: config.onlyOn,
    guesses: config.guesses,
  };
}

/**
 * The schema of the bisync that writes the file, relative to the file: it exists for the user as
 * long as this bisync is installed there (`./node_modules/bisync/schema/…` for a project install).
 */
function schemaRef(out: string): string {
  const relative = path.relative(path.dirname(path.resolve(out)), packageFile('schema/sync.config.schema.json')).split(path.sep).join('/');
  return relative.startsWith('.') ? relative : `./${relative}`;
}

async function readListing(db: ResolvedDatabase): Promise<DatabaseListing> {
  const client = await connect(db);
  try {
    return await readOnly(client, async (searchPath) => await listTables(client, [INIT_STATE_SCHEMA], searchPath));
  } finally {
    await client.end();
  }
}

function resolveUrl(side: Side, url: string): ResolvedDatabase {
  const db = databaseFromUrl(side, url, process.env);
  if ('error' in db) {
    // The URL itself is never echoed: it may hold a password.
    throw new BisyncError('INIT_BAD_URL', `the ${side} URL is not usable: ${db.error}`, {
      exitCode: ExitCode.usage,
      hint: `pass --${side} postgres://user:password@host:5432/database`,
    });
  }
  return db;
}

function fileExists(file: string): BisyncError {
  return new BisyncError('INIT_FILE_EXISTS', `${file} already exists; init does not overwrite it`, {
    exitCode: ExitCode.usage,
    hint: 'pass --force to replace it, or --out FILE to write somewhere else',
  });
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
