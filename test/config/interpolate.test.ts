import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load-config.js';
import { ConfigError } from '../../src/errors.js';
import { at, configError, onlyProblem, resolve, yaml } from './helpers.js';

/** A config whose database URLs (and state schema) are given as written, with one forward table. */
function config(desktopUrl: string, cloudUrl: string, extra = ''): string {
  return yaml`
    version: 1
    databases:
      desktop:
        url: ${desktopUrl}
      cloud:
        url: ${cloudUrl}
    forward: { from: desktop, to: cloud }
    ${extra}
    tables:
      - name: orgmaster
        primary_key: [org_id]
        direction: forward
  `;
}

const DESKTOP = 'postgres://office@localhost:5432/practice';
const CLOUD = 'postgres://postgres@db.example.com:5432/postgres';

describe('environment interpolation', () => {
  it('${VAR} is replaced by the variable', () => {
    const c = resolve(config('${DESKTOP_URL}', CLOUD), { DESKTOP_URL: DESKTOP });
    expect(c.databases.desktop?.url).toBe(DESKTOP);
  });

  it('${VAR} may be part of a longer string, several times', () => {
    const c = resolve(config('postgres://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:5432/practice', CLOUD), {
      DB_USER: 'office',
      DB_PASSWORD: 'pw',
      DB_HOST: 'localhost',
    });
    expect(c.databases.desktop?.url).toBe('postgres://office:pw@localhost:5432/practice');
  });

  it('${VAR:-default} uses the variable when it is set', () => {
    const c = resolve(config(`\${DESKTOP_URL:-${DESKTOP}}`, CLOUD), { DESKTOP_URL: 'postgres://elsewhere.example.com/x' });
    expect(c.databases.desktop?.url).toBe('postgres://elsewhere.example.com/x');
  });

  it('${VAR:-default} uses the default when the variable is unset', () => {
    const c = resolve(config(`\${DESKTOP_URL:-${DESKTOP}}`, CLOUD), {});
    expect(c.databases.desktop?.url).toBe(DESKTOP);
  });

  it('${VAR:-default} uses the default when the variable is empty', () => {
    const c = resolve(config(`\${DESKTOP_URL:-${DESKTOP}}`, CLOUD), { DESKTOP_URL: '' });
    expect(c.databases.desktop?.url).toBe(DESKTOP);
  });

  it('${VAR:-} with an empty default is allowed', () => {
    const c = resolve(config(`postgres://office\${PORT_SUFFIX:-}@localhost/practice`, CLOUD), {});
    expect(c.databases.desktop?.url).toBe('postgres://office@localhost/practice');
  });

  it('interpolation applies to any string value, e.g. the state schema and ssl', () => {
    const c = resolve(config(DESKTOP, CLOUD, 'state: { schema: "${STATE_SCHEMA:-bisync}" }'), { STATE_SCHEMA: 'sync_state' });
    expect(c.stateSchema).toBe('sync_state');
    const d = resolve(config(DESKTOP, `${CLOUD}\n    ssl: \${CLOUD_SSL:-require}`), { CLOUD_SSL: 'disable' });
    expect(d.databases.cloud?.ssl).toBe('disable');
  });

  it('$$ is a literal $', () => {
    const c = resolve(config(DESKTOP, CLOUD, 'state: { schema: "cost$$center" }'), {});
    expect(c.stateSchema).toBe('cost$center');
  });

  it('$${VAR} is the literal text ${VAR}, not a reference', () => {
    const c = resolve(config(DESKTOP, 'postgres://postgres:pa$${x}@db.example.com/postgres'), {});
    expect(c.databases.cloud?.url).toBe('postgres://postgres:pa${x}@db.example.com/postgres');
    expect(c.databases.cloud?.host).toBe('db.example.com');
  });

  it('a variable whose value contains ${ is used as is, and the database is still resolved', () => {
    const c = resolve(config('${DESKTOP_URL}', CLOUD), { DESKTOP_URL: 'postgres://office:a${b}c@localhost/practice' });
    expect(Object.keys(c.databases)).toEqual(['desktop', 'cloud']);
    expect(c.databases.desktop).toMatchObject({ url: 'postgres://office:a${b}c@localhost/practice', host: 'localhost', database: 'practice' });
  });

  it('a variable value is not interpolated again', () => {
    const c = resolve(config(DESKTOP, CLOUD, 'state: { schema: "${STATE_SCHEMA}" }'), { STATE_SCHEMA: '${OTHER}', OTHER: 'x' });
    expect(c.stateSchema).toBe('${OTHER}');
  });

  it('a missing variable is a problem naming the variable at the position of the value', () => {
    const text = config('${DESKTOP_DATABASE_URL}', CLOUD);
    const p = onlyProblem(text, {});
    expect(p.path).toBe('databases.desktop.url');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '${DESKTOP_DATABASE_URL}'));
    expect({ line: p.line, column: p.column }).toEqual({ line: 4, column: 10 });
    expect(p.message).toBe('environment variable DESKTOP_DATABASE_URL is not set');
    expect(p.hint).toContain('export DESKTOP_DATABASE_URL=');
    expect(p.hint).toContain('${DESKTOP_DATABASE_URL:-value}');
  });

  it('an empty variable without a default is a problem saying it is empty', () => {
    const text = config(DESKTOP, '${CLOUD_DATABASE_URL}');
    const p = onlyProblem(text, { CLOUD_DATABASE_URL: '' });
    expect(p.path).toBe('databases.cloud.url');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '${CLOUD_DATABASE_URL}'));
    expect(p.message).toBe('environment variable CLOUD_DATABASE_URL is empty');
  });

  it('every missing variable is named, also several in one value', () => {
    const text = config('postgres://${DB_USER}:${DB_PASSWORD}@localhost/practice', '${CLOUD_DATABASE_URL}');
    const err = configError(text, {});
    expect(err.problems.map((p) => [p.path, p.message])).toEqual([
      ['databases.desktop.url', 'environment variable DB_USER is not set'],
      ['databases.desktop.url', 'environment variable DB_PASSWORD is not set'],
      ['databases.cloud.url', 'environment variable CLOUD_DATABASE_URL is not set'],
    ]);
  });

  it('a missing variable does not also produce an "invalid URL" problem', () => {
    const err = configError(config('${DESKTOP_DATABASE_URL}', CLOUD), {});
    expect(err.problems.map((p) => p.message)).toEqual(['environment variable DESKTOP_DATABASE_URL is not set']);
  });

  it.each([
    ['an unterminated reference', 'postgres://localhost/${DB_NAME', '${DB_NAME'],
    ['a name that starts with a digit', 'postgres://localhost/${1DB}', '${1DB}'],
    ['a default written without the dash', 'postgres://localhost/${DB_NAME:practice}', '${DB_NAME:practice}'],
    ['an empty reference', 'postgres://localhost/${}', '${}'],
  ])('%s is a malformed reference, located and explained', (_what, url, reference) => {
    const text = config(url, CLOUD);
    const p = onlyProblem(text, { DB_NAME: 'x', '1DB': 'x' });
    expect(p.path).toBe('databases.desktop.url');
    expect({ line: p.line, column: p.column }).toEqual(at(text, url));
    expect(p.message).toBe(`malformed variable reference "${reference}"`);
    expect(p.hint).toMatch(/\$\{NAME\} or \$\{NAME:-default\}; use \$\$ for a literal \$/);
  });
});

describe('secrets in variables never appear in problems', () => {
  const PASSWORD = 'Tr0ub4dor&3-horse';

  function everyText(err: ConfigError): string[] {
    return [err.message, ...err.problems.flatMap((p) => [p.message, p.hint ?? '', p.path, p.file])];
  }

  function expectNoSecret(err: ConfigError): void {
    for (const text of everyText(err)) expect(text).not.toContain(PASSWORD);
    expect(err.message).not.toContain('Tr0ub4dor');
  }

  it.each([
    ['a URL that is not postgres://', `mysql://app:${PASSWORD}@db.example.com/app`, 'expected a postgres:// or postgresql:// URL'],
    ['a URL with port 0', `postgres://app:${PASSWORD}@db.example.com:0/app`, 'the URL has an invalid port'],
    ['a URL with a port out of range', `postgres://app:${PASSWORD}@db.example.com:99999/app`, 'the URL could not be parsed'],
    ['a URL with an unterminated IPv6 host', `postgres://app:${PASSWORD}@[::1/app`, 'the URL could not be parsed'],
    ['a URL with an unknown sslmode', `postgres://app:${PASSWORD}@db.example.com/app?sslmode=sometimes`, 'sslmode "sometimes" in the URL is not a libpq sslmode'],
  ])('%s: the problem names the position, not the password', (_what, url, message) => {
    const text = config(DESKTOP, '${CLOUD_DATABASE_URL}');
    const err = configError(text, { CLOUD_DATABASE_URL: url });
    const [p, ...rest] = err.problems;
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ path: 'databases.cloud.url', message, ...at(text, '${CLOUD_DATABASE_URL}') });
    expectNoSecret(err);
  });

  it('a password interpolated into a URL is not echoed when the URL around it is invalid', () => {
    const text = config('postgres://office:${DESKTOP_PASSWORD}@localhost:port/practice', CLOUD);
    const err = configError(text, { DESKTOP_PASSWORD: PASSWORD });
    expect(err.problems.map((p) => p.path)).toEqual(['databases.desktop.url']);
    expectNoSecret(err);
  });

  it('a password is not echoed when other parts of the file are wrong', () => {
    const text = config(
      'postgres://office:${DESKTOP_PASSWORD}@localhost/practice',
      '${CLOUD_DATABASE_URL}\n    ssl: verify-full',
      'colour: blue',
    );
    const err = configError(text, { DESKTOP_PASSWORD: PASSWORD, CLOUD_DATABASE_URL: `postgres://x:${PASSWORD}@db.example.com/p` });
    expect(err.problems.map((p) => p.path)).toEqual(['databases.cloud.ssl', 'colour']);
    expectNoSecret(err);
  });

  it('a variable holding only a password, used as the URL, is not echoed', () => {
    const text = config(DESKTOP, '${CLOUD_DATABASE_URL}');
    const err = configError(text, { CLOUD_DATABASE_URL: PASSWORD });
    expect(err.problems.map((p) => p.message)).toEqual(['expected a postgres:// or postgresql:// URL']);
    expectNoSecret(err);
  });

  it('the resolved URL does keep the password (it is needed to connect)', () => {
    const c = parseConfig('x.yaml', config('postgres://office:${DESKTOP_PASSWORD}@localhost/practice', CLOUD), { DESKTOP_PASSWORD: PASSWORD });
    expect(c.databases.desktop?.url).toBe(`postgres://office:${PASSWORD}@localhost/practice`);
    expect(c.databases.desktop).toMatchObject({ host: 'localhost', database: 'practice' });
  });
});
