import { describe, expect, it } from 'vitest';
import { at, onlyProblem, resolve, yaml } from './helpers.js';

/** A config with the cloud database given by `cloud` (the lines under `cloud:`). */
function config(cloud: string): string {
  return yaml`
    version: 1
    databases:
      desktop:
        url: postgres://office@localhost:5432/practice
      cloud:
    ${cloud}
    forward: { from: desktop, to: cloud }
    tables:
      - name: orgmaster
        primary_key: [org_id]
        direction: forward
  `;
}

const url = (u: string): string => `    url: "${u}"`;

describe('ssl defaults by host (SPEC §3)', () => {
  it.each([
    ['localhost', 'postgres://u:p@localhost:5432/db'],
    ['127.0.0.1', 'postgres://u:p@127.0.0.1:5432/db'],
    ['::1', 'postgres://u:p@[::1]:5432/db'],
    ['a socket path given as host=', 'postgres://u@/db?host=/var/run/postgresql'],
    ['a socket path given percent-encoded', 'postgresql://%2Fvar%2Frun%2Fpostgresql/db'],
    ['no host at all (the default socket)', 'postgres:///db'],
  ])('%s defaults to disable', (_host, u) => {
    const db = resolve(config(url(u))).databases.cloud;
    expect(db).toMatchObject({ ssl: 'disable', sslSource: 'default', ca: null });
  });

  it.each([
    ['a domain name', 'postgres://u:p@db.example.supabase.co:5432/postgres'],
    ['a pooler', 'postgres://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres'],
    ['a private IP', 'postgres://u:p@10.0.0.5/db'],
    ['a LAN host name', 'postgres://u:p@office-server/db'],
    ['a name that merely contains localhost', 'postgres://u:p@localhost.example.com/db'],
  ])('%s defaults to require', (_host, u) => {
    const db = resolve(config(url(u))).databases.cloud;
    expect(db).toMatchObject({ ssl: 'require', sslSource: 'default' });
  });

  it('the host, port and database are parsed from the URL', () => {
    const db = resolve(config(url('postgres://u:p@db.example.com:6543/app'))).databases.cloud;
    expect(db).toMatchObject({ host: 'db.example.com', port: 6543, database: 'app' });
    const local = resolve(config(url('postgres://u@/app?host=/tmp'))).databases.cloud;
    expect(local).toMatchObject({ host: '/tmp', port: 5432, database: 'app' });
  });
});

describe('sslmode in the URL', () => {
  it('sslmode=require in the URL wins over the localhost default', () => {
    const db = resolve(config(url('postgres://u:p@localhost/db?sslmode=require'))).databases.cloud;
    expect(db).toMatchObject({ ssl: 'require', sslSource: 'url' });
  });

  it('sslmode=disable in the URL wins over the remote default', () => {
    const db = resolve(config(url('postgres://u:p@db.example.com/db?connect_timeout=5&sslmode=disable'))).databases.cloud;
    expect(db).toMatchObject({ ssl: 'disable', sslSource: 'url' });
  });

  it('an explicit ssl wins over sslmode in the URL (disable over require)', () => {
    const db = resolve(config(`${url('postgres://u:p@db.example.com/db?sslmode=require')}\n    ssl: disable`)).databases.cloud;
    expect(db).toMatchObject({ ssl: 'disable', sslSource: 'explicit' });
  });

  it('an explicit ssl wins over sslmode in the URL (require over disable)', () => {
    const db = resolve(config(`${url('postgres://u:p@localhost/db?sslmode=disable')}\n    ssl: require`)).databases.cloud;
    expect(db).toMatchObject({ ssl: 'require', sslSource: 'explicit' });
  });

  it('an explicit ssl wins over the host default', () => {
    expect(resolve(config(`${url('postgres://u:p@localhost/db')}\n    ssl: require`)).databases.cloud).toMatchObject({ ssl: 'require', sslSource: 'explicit' });
    expect(resolve(config(`${url('postgres://u:p@db.example.com/db')}\n    ssl: disable`)).databases.cloud).toMatchObject({ ssl: 'disable', sslSource: 'explicit' });
  });

  it('an sslmode that is not a libpq sslmode is a problem at the URL', () => {
    const text = config(url('postgres://u:p@db.example.com/db?sslmode=on'));
    const p = onlyProblem(text);
    expect(p.path).toBe('databases.cloud.url');
    expect({ line: p.line, column: p.column }).toEqual(at(text, '"postgres://u:p@db.example.com/db?sslmode=on"'));
    expect(p.message).toBe('sslmode "on" in the URL is not a libpq sslmode');
  });
});

describe('verify-full', () => {
  it('ssl: verify-full without ca is a problem at ssl, saying to add ca', () => {
    const text = config(`${url('postgres://u:p@db.example.com/db')}\n    ssl: verify-full`);
    const p = onlyProblem(text);
    expect(p.path).toBe('databases.cloud.ssl');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'ssl: verify-full', 'verify-full'));
    expect(p.message).toBe('ssl: verify-full needs a CA certificate');
    expect(p.hint).toMatch(/add ca: /);
  });

  it('ssl: verify-full with ca resolves, keeping the ca path', () => {
    const db = resolve(config(`${url('postgres://u:p@db.example.com/db')}\n    ssl: verify-full\n    ca: certs/supabase-ca.pem`)).databases.cloud;
    expect(db).toMatchObject({ ssl: 'verify-full', sslSource: 'explicit', ca: 'certs/supabase-ca.pem' });
  });

  it('ca without verify-full is a problem at ca (it would be silently unused)', () => {
    const text = config(`${url('postgres://u:p@db.example.com/db')}\n    ssl: require\n    ca: certs/ca.pem`);
    const p = onlyProblem(text);
    expect(p.path).toBe('databases.cloud.ca');
    expect({ line: p.line, column: p.column }).toEqual(at(text, 'ca: certs/ca.pem', 'ca'));
    expect(p.hint).toMatch(/ssl: verify-full/);
  });
});
