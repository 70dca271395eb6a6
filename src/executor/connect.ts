import { readFileSync } from 'node:fs';
import pg from 'pg';
import { describeDatabase, urlPassword, urlUser } from '../config/database-url.js';
import type { ResolvedDatabase } from '../config/types.js';
import { BisyncError, ExitCode } from '../errors.js';

// int8 and numeric stay strings (exact); timestamps stay strings (full microsecond precision:
// a JavaScript Date would drop them, SPEC §2.3).
const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;
const DATE = 1082;
const keepText = (value: string): string => value;
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ || oid === TIMESTAMP || oid === DATE ? keepText : pg.types.getTypeParser(oid, format ?? 'text'),
} as pg.CustomTypesConfig;

/** How the server asked for the password: SCRAM never reveals it, cleartext and MD5 do. */
type AuthMethod = 'cleartext' | 'md5' | undefined;

/**
 * The driver configuration for a database, built field by field from what the config resolved:
 * no connection string, so no URL parameter (`ssl=0`, a second `sslmode`, an encoded `ssl%6Dode`)
 * can change the TLS mode, and the host is the one `validate` reports (never a silent PGHOST).
 */
function clientConfig(db: ResolvedDatabase, authMethod: () => AuthMethod): pg.ClientConfig {
  const password = urlPassword(db.url) ?? process.env.PGPASSWORD;
  const ssl =
    db.ssl === 'disable'
      ? false
      : db.ssl === 'require'
        ? { rejectUnauthorized: false }
        : { rejectUnauthorized: true, ...(db.ca === null ? {} : { ca: readFileSync(db.ca, 'utf8') }) };
  return {
    host: db.host,
    port: db.port,
    ...(db.database === '' ? {} : { database: db.database }),
    ...(db.user === null ? {} : { user: db.user }),
    ...(db.options === null ? {} : { options: db.options }),
    // Over TLS whose certificate is not checked (ssl: require) anyone on the path can pose as the
    // server: hand the password only to SCRAM, which proves it without revealing it.
    password: db.ssl === 'require' ? () => passwordFor(db, authMethod(), password) : password,
    ssl,
    types,
    application_name: 'bisync',
    connectionTimeoutMillis: 15_000,
    keepAlive: true,
  } as pg.ClientConfig;
}

function passwordFor(db: ResolvedDatabase, method: AuthMethod, password: string | undefined): string {
  if (method !== undefined) {
    throw new BisyncError(
      'TLS_UNVERIFIED_PASSWORD',
      `cannot connect to ${describeDatabase(db)}: the server asked for the password in ${method === 'md5' ? 'MD5' : 'clear text'} over a TLS connection whose certificate is not verified (ssl: require); bisync did not send it`,
      {
        exitCode: ExitCode.usage,
        hint: 'use ssl: verify-full with ca: the server\'s CA certificate (Supabase: Database settings → SSL → download the certificate), or have the server use scram-sha-256 authentication',
      },
    );
  }
  return password ?? '';
}

/** Connections `preconnect` started that no `connect` has taken yet, by the database's resolved config. */
const early = new WeakMap<ResolvedDatabase, Promise<pg.Client>>();

/**
 * Start connecting to `db` now, for the next `connect(db)` to take: over a WAN a connection costs
 * round trips (TCP, TLS, authentication) in which the caller can load and prepare what it needs.
 * An error is the taker's, as if it had connected itself.
 */
export function preconnect(db: ResolvedDatabase): void {
  if (early.has(db)) return;
  const opening = open(db);
  opening.catch(() => undefined);
  early.set(db, opening);
}

/** Open a connection (or take the one `preconnect` started); failures become exit-2 errors that name host and database, never the password. */
export async function connect(db: ResolvedDatabase): Promise<pg.Client> {
  const started = early.get(db);
  if (started === undefined) return await open(db);
  early.delete(db);
  return await started;
}

async function open(db: ResolvedDatabase): Promise<pg.Client> {
  let method: AuthMethod;
  let config: pg.ClientConfig;
  try {
    config = clientConfig(db, () => method);
  } catch (cause) {
    throw new BisyncError('CA_UNREADABLE', `${db.name}: the CA certificate ${db.ca ?? ''} cannot be read`, {
      exitCode: ExitCode.usage,
      hint: 'check the ca: path in the config (relative paths are from the current directory) and its permissions',
      cause,
    });
  }
  const client = new pg.Client(config);
  // Recorded before the driver's own handler asks for the password (listeners run in order).
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  connection.prependListener('authenticationCleartextPassword', () => (method = 'cleartext'));
  connection.prependListener('authenticationMD5Password', () => (method = 'md5'));
  client.on('error', () => undefined); // a dropped connection surfaces as the failing query's error
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => undefined);
    if (cause instanceof BisyncError) throw cause;
    throw connectionError(db, cause);
  }
  return client;
}

/** Replace a password anywhere in `text` (defence in depth: driver messages should not hold it). */
export function redact(text: string, url: string): string {
  const password = urlPassword(url);
  if (password === undefined) return text;
  const user = urlUser(url);
  const mask = (part: string): string => part.split(password).join('***');
  // The user name is not a secret: where the server quotes it (`user "bisync"`), keep it readable
  // even when the password is, or is part of, that name.
  if (user !== undefined && user.includes(password)) {
    const quoted = `"${user}"`;
    return text.split(quoted).map(mask).join(quoted);
  }
  return mask(text);
}

function connectionError(db: ResolvedDatabase, cause: unknown): BisyncError {
  const err = cause as { code?: string; message?: string };
  const what = describeDatabase(db);
  const detail = redact(err.message ?? String(cause), db.url);
  let hint = 'check the URL, that the server is running, and the network path to it';
  if (err.code === '28P01' || err.code === '28000') hint = 'check the user name and password in the URL (or the variable it comes from)';
  else if (err.code === '3D000') hint = 'check the database name at the end of the URL';
  else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') hint = 'check the host name in the URL';
  else if (err.code === 'ECONNREFUSED') hint = 'nothing listens there: check host and port, and that PostgreSQL is running';
  else if (/ssl|certificate|tls/i.test(detail)) hint = `check the TLS setting (ssl: ${db.ssl}${db.sslSource === 'default' ? ', the default for this host' : ''}) and the server's certificate`;
  return new BisyncError('DB_UNREACHABLE', `cannot connect to ${what}: ${detail}`, { exitCode: ExitCode.usage, hint, cause: new Error(detail) });
}
