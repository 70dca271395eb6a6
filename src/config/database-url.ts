import { parse } from 'pg-connection-string';
import type { ResolvedDatabase, SslMode } from './types.js';

export interface UrlFacts {
  /** The host bisync connects to: the URL's, else `PGHOST`, else localhost (as the driver would). */
  host: string;
  port: number;
  database: string;
  /** The URL's user; null leaves it to `PGUSER` or the operating-system user. */
  user: string | null;
  /** The URL's `options` (startup options a pooler may need to route, e.g. `endpoint=…`). */
  options: string | null;
  /** The URL's own sslmode, mapped onto bisync's three modes; undefined when absent. */
  urlSsl: SslMode | undefined;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

// TLS is decided by `ssl`/`ca` in the config (or `sslmode` in the URL) and nothing else: a URL
// parameter the driver would read as a TLS switch (`?ssl=0` turned TLS off under ssl: verify-full)
// is refused rather than silently obeyed or silently dropped.
const REFUSED_PARAMS = new Set(['ssl', 'sslcert', 'sslkey', 'sslrootcert', 'sslpassword', 'sslcrl', 'sslcrldir', 'sslnegotiation', 'sslcompression', 'requiressl', 'sslsni', 'hostaddr', 'port', 'user', 'password', 'dbname']);

/** Whether a host is this machine (or a Unix socket path), where TLS is off by default. */
export function isLocalHost(host: string): boolean {
  return LOCAL_HOSTS.has(host) || host.startsWith('/');
}

function mapSslMode(mode: string): SslMode | undefined {
  if (mode === 'disable') return 'disable';
  if (['allow', 'prefer', 'require', 'no-verify'].includes(mode)) return 'require';
  if (['verify-ca', 'verify-full'].includes(mode)) return 'verify-full';
  return undefined;
}

/** The URL up to its query: the driver's parser never sees (nor warns about) the parameters. */
function withoutQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The query parameters of a URL, decoded as the driver decodes them (keys too: `ssl%6Dode` is `sslmode`). */
function queryParams(url: string): URLSearchParams | { error: string } {
  const q = url.indexOf('?');
  if (q < 0) return new URLSearchParams();
  const hash = url.indexOf('#', q);
  try {
    return new URLSearchParams(url.slice(q + 1, hash < 0 ? undefined : hash));
  } catch {
    return { error: 'the query part of the URL could not be parsed' };
  }
}

/**
 * Host, port, database, user and TLS mode of a postgres URL, without ever returning its password.
 * `env` supplies what the driver would otherwise take silently (`PGHOST`, `PGPORT`, `PGDATABASE`),
 * so what bisync reports — and the TLS default it picks — is the server it actually connects to.
 */
export function urlFacts(url: string, env: NodeJS.ProcessEnv = {}): UrlFacts | { error: string } {
  if (!/^postgres(ql)?:\/\//.test(url)) return { error: 'expected a postgres:// or postgresql:// URL' };
  if (url.includes('\0')) return { error: 'the URL contains a NUL character' };
  const params = queryParams(url);
  if ('error' in params) return params;
  for (const key of new Set(params.keys())) {
    if (REFUSED_PARAMS.has(key)) {
      return {
        error: ['ssl', 'sslcert', 'sslkey', 'sslrootcert', 'sslpassword', 'sslcrl', 'sslcrldir', 'sslnegotiation', 'sslcompression', 'requiressl', 'sslsni'].includes(key)
          ? `"${key}" in the URL is not used: TLS is set by ssl (and ca) in the config, or by sslmode in the URL`
          : `"${key}" in the query of the URL is not used: write it in the URL itself (postgres://user:password@host:port/database)`,
      };
    }
    if (params.getAll(key).length > 1 && new Set(params.getAll(key)).size > 1) return { error: `"${key}" is given twice in the URL with different values` };
  }
  const sslmode = params.get('sslmode') ?? undefined;
  let urlSsl: SslMode | undefined;
  if (sslmode !== undefined) {
    urlSsl = mapSslMode(sslmode);
    if (urlSsl === undefined) return { error: `sslmode "${sslmode}" in the URL is not a libpq sslmode` };
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(withoutQuery(url));
  } catch {
    return { error: 'the URL could not be parsed' };
  }
  const queryHost = params.get('host');
  const urlHost = parsed.host === null || parsed.host === undefined || parsed.host === '' ? (queryHost === null || queryHost === '' ? undefined : queryHost) : parsed.host;
  const envHost = env.PGHOST === undefined || env.PGHOST === '' ? undefined : env.PGHOST;
  const portText = parsed.port === null || parsed.port === undefined || parsed.port === '' ? env.PGPORT : parsed.port;
  const port = portText === undefined || portText === '' ? 5432 : Number(portText);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    return { error: parsed.port === null || parsed.port === undefined || parsed.port === '' ? 'PGPORT (used because the URL has no port) is not a valid port' : 'the URL has an invalid port' };
  }
  const database = parsed.database === null || parsed.database === undefined || parsed.database === '' ? (env.PGDATABASE ?? '') : parsed.database;
  return {
    host: urlHost ?? envHost ?? 'localhost',
    port,
    database,
    user: parsed.user === null || parsed.user === undefined || parsed.user === '' ? null : parsed.user,
    options: params.get('options'),
    urlSsl,
  };
}

/** The password in a URL, or undefined. Only the executor's connection and redaction use it. */
export function urlPassword(url: string): string | undefined {
  try {
    const password = parse(withoutQuery(url)).password;
    return password === undefined || password === null || password === '' ? undefined : password;
  } catch {
    return undefined;
  }
}

/** The user name in a URL, or undefined (not a secret: errors may quote it). */
export function urlUser(url: string): string | undefined {
  try {
    const user = parse(withoutQuery(url)).user;
    return user === undefined || user === null || user === '' ? undefined : user;
  } catch {
    return undefined;
  }
}

/**
 * The TLS mode of SPEC §3: an explicit `ssl` wins, then the URL's `sslmode`, then `disable` for this
 * machine and `require` for any other host.
 */
export function sslFor(explicit: SslMode | undefined, facts: UrlFacts): Pick<ResolvedDatabase, 'ssl' | 'sslSource'> {
  if (explicit !== undefined) return { ssl: explicit, sslSource: 'explicit' };
  if (facts.urlSsl !== undefined) return { ssl: facts.urlSsl, sslSource: 'url' };
  return { ssl: isLocalHost(facts.host) ? 'disable' : 'require', sslSource: 'default' };
}

/** A database given by URL alone (as `bisync init` takes them): TLS by the default rule, no CA file. */
export function databaseFromUrl(name: string, url: string, env: NodeJS.ProcessEnv = {}): ResolvedDatabase | { error: string } {
  const facts = urlFacts(url, env);
  if ('error' in facts) return facts;
  return { name, url, ...sslFor(undefined, facts), ca: null, host: facts.host, port: facts.port, database: facts.database, user: facts.user, options: facts.options };
}

/** `host:port/database` — how bisync names a database to people. Never includes credentials. */
export function describeDatabase(db: { name: string; host: string; port: number; database: string }): string {
  return `${db.name} (${db.host}:${db.port}/${db.database})`;
}
