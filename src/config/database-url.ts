import { parse } from 'pg-connection-string';
import type { ResolvedDatabase, SslMode } from './types.js';

export interface UrlFacts {
  host: string;
  port: number;
  database: string;
  /** The URL's own sslmode, mapped onto bisync's three modes; undefined when absent. */
  urlSsl: SslMode | undefined;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Whether a host is this machine (or a Unix socket path), where TLS is off by default. */
export function isLocalHost(host: string): boolean {
  return LOCAL_HOSTS.has(host) || host.startsWith('/');
}

/** Split off `sslmode` so the driver never applies its own interpretation of it. */
export function withoutSslMode(url: string): { url: string; sslmode: string | undefined } {
  const match = /([?&])sslmode=([^&#]*)&?/.exec(url);
  if (match === null) return { url, sslmode: undefined };
  const before = url.slice(0, match.index);
  const after = url.slice(match.index + match[0].length);
  const joiner = match[1] === '?' && after !== '' ? '?' : match[1] === '&' && after !== '' ? '&' : '';
  return { url: `${before}${joiner}${after}`, sslmode: decodeURIComponent(match[2] ?? '') };
}

function mapSslMode(mode: string): SslMode | undefined {
  if (mode === 'disable') return 'disable';
  if (['allow', 'prefer', 'require', 'no-verify'].includes(mode)) return 'require';
  if (['verify-ca', 'verify-full'].includes(mode)) return 'verify-full';
  return undefined;
}

/** Host, port and database of a postgres URL, without ever returning its password. */
export function urlFacts(url: string): UrlFacts | { error: string } {
  if (!/^postgres(ql)?:\/\//.test(url)) return { error: 'expected a postgres:// or postgresql:// URL' };
  const { url: bare, sslmode } = withoutSslMode(url);
  let urlSsl: SslMode | undefined;
  if (sslmode !== undefined) {
    urlSsl = mapSslMode(sslmode);
    if (urlSsl === undefined) return { error: `sslmode "${sslmode}" in the URL is not a libpq sslmode` };
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(bare);
  } catch {
    return { error: 'the URL could not be parsed' };
  }
  const port = parsed.port === null || parsed.port === undefined || parsed.port === '' ? 5432 : Number(parsed.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return { error: 'the URL has an invalid port' };
  return {
    host: parsed.host === null || parsed.host === '' ? 'localhost' : parsed.host,
    port,
    database: parsed.database ?? '',
    urlSsl,
  };
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
export function databaseFromUrl(name: string, url: string): ResolvedDatabase | { error: string } {
  const facts = urlFacts(url);
  if ('error' in facts) return facts;
  return { name, url, ...sslFor(undefined, facts), ca: null, host: facts.host, port: facts.port, database: facts.database };
}

/** `host:port/database` — how bisync names a database to people. Never includes credentials. */
export function describeDatabase(db: { name: string; host: string; port: number; database: string }): string {
  return `${db.name} (${db.host}:${db.port}/${db.database})`;
}
