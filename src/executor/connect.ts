import { readFileSync } from 'node:fs';
import pg from 'pg';
import { parse } from 'pg-connection-string';
import { describeDatabase, withoutSslMode } from '../config/database-url.js';
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

/** The driver configuration for a database: TLS as the config resolved it, never the URL's sslmode. */
export function clientConfig(db: ResolvedDatabase): pg.ClientConfig {
  const { url } = withoutSslMode(db.url);
  const ssl =
    db.ssl === 'disable'
      ? false
      : db.ssl === 'require'
        ? { rejectUnauthorized: false }
        : { rejectUnauthorized: true, ...(db.ca === null ? {} : { ca: readFileSync(db.ca, 'utf8') }) };
  return {
    connectionString: url,
    ssl,
    types,
    application_name: 'bisync',
    connectionTimeoutMillis: 15_000,
    keepAlive: true,
  };
}

/** Open a connection; failures become exit-2 errors that name host and database, never the password. */
export async function connect(db: ResolvedDatabase): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(db));
  client.on('error', () => undefined); // a dropped connection surfaces as the failing query's error
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => undefined);
    throw connectionError(db, cause);
  }
  return client;
}

/** Replace a password anywhere in `text` (defence in depth: driver messages should not hold it). */
export function redact(text: string, url: string): string {
  let password: string | undefined;
  let user: string | undefined;
  try {
    ({ password, user } = parse(withoutSslMode(url).url));
  } catch {
    password = undefined;
  }
  if (password === undefined || password === '') return text;
  const mask = (part: string): string => part.split(password).join('***');
  // The user name is not a secret: where the server quotes it (`user "bisync"`), keep it readable
  // even when the password is, or is part of, that name.
  if (user !== undefined && user !== null && user.includes(password)) {
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
