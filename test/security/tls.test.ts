import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedServer } from '../../src/embedded/embedded-server.js';
import type { EmbeddedServer } from '../../src/embedded/embedded-server.js';
import { runCli, writeConfig } from '../harness/bisync.js';
import { withClient } from '../harness/fresh-databases.js';

async function certificate(): Promise<{ cert: string; key: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
    days: 2,
    keySize: 2048,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
  });
  return { cert: pems.cert, key: pems.private };
}

describe('TLS: ssl require and verify-full against a server with a self-signed certificate', () => {
  let server: EmbeddedServer;
  let dir = '';
  let caFile = '';
  let wrongCaFile = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bisync-tls-'));
    chmodSync(dir, 0o755);
    const { cert, key } = await certificate();
    const certFile = join(dir, 'server.crt');
    const keyFile = join(dir, 'server.key');
    writeFileSync(certFile, cert);
    writeFileSync(keyFile, key, { mode: 0o600 });
    // The server only accepts encrypted connections from 127.0.0.1.
    const hbaFile = join(dir, 'pg_hba.conf');
    writeFileSync(hbaFile, 'hostssl all all 127.0.0.1/32 scram-sha-256\n');
    if (userInfo().uid === 0) {
      // PostgreSQL runs as the unprivileged "postgres" user and insists on owning its key.
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      for (const f of [certFile, keyFile, hbaFile]) chownSync(f, uid, gid);
    }
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, cert);
    wrongCaFile = join(dir, 'other-ca.pem');
    writeFileSync(wrongCaFile, (await certificate()).cert);
    server = await startEmbeddedServer({
      fast: true,
      settings: ['ssl=on', `ssl_cert_file=${certFile}`, `ssl_key_file=${keyFile}`, `hba_file=${hbaFile}`],
    });
    await withClient(`${server.url('postgres')}?sslmode=no-verify`, async (c) => {
      await c.query('CREATE DATABASE desk');
      await c.query('CREATE DATABASE cloud');
    });
    for (const db of ['desk', 'cloud']) {
      await withClient(`${server.url(db)}?sslmode=no-verify`, async (c) => {
        await c.query('CREATE TABLE t (id integer PRIMARY KEY, v text)');
      });
    }
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (cloudSsl: string): string =>
    writeConfig(`
version: 1
databases:
  desktop:
    url: \${DESKTOP_DATABASE_URL}
    ssl: require
  cloud:
    url: \${CLOUD_DATABASE_URL}
${cloudSsl}
forward: { from: desktop, to: cloud }
tables:
  - name: t
    primary_key: [id]
    direction: forward
`);
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, DESKTOP_DATABASE_URL: server.url('desk'), CLOUD_DATABASE_URL: server.url('cloud') });

  it('ssl: require connects (encrypted, certificate not checked)', async () => {
    const result = await runCli(['validate', '--live', '--config', config('    ssl: require')], env());
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('ssl: verify-full with the server\'s CA connects, and apply runs over it', async () => {
    const file = config(`    ssl: verify-full\n    ca: ${caFile}`);
    expect((await runCli(['validate', '--live', '--config', file], env())).code).toBe(0);
    const applied = await runCli(['apply', '--config', file, '--log-level', 'error'], env());
    expect(applied.code).toBe(0);
  });

  it('ssl: verify-full with a CA that did not sign the server certificate is refused with exit 2 and a TLS hint', async () => {
    const result = await runCli(['validate', '--live', '--config', config(`    ssl: verify-full\n    ca: ${wrongCaFile}`)], env());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot connect to cloud \(127\.0\.0\.1:\d+\/cloud\)/);
    expect(result.stderr).toMatch(/hint: check the TLS setting \(ssl: verify-full\)/);
  });

  it('the localhost default (ssl: disable) is refused by a server that requires TLS, and sslmode in the URL overrides the default', async () => {
    const plain = await runCli(['validate', '--live', '--config', config('')], env());
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/cannot connect to cloud/);
    const viaUrl = await runCli(['validate', '--live', '--config', config('')], { ...env(), CLOUD_DATABASE_URL: `${server.url('cloud')}?sslmode=require` });
    expect(viaUrl.stderr).toBe('');
    expect(viaUrl.code).toBe(0);
  });
});
