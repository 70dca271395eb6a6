import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import selfsigned from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfig } from '../harness/bisync.js';
import { useFreshDatabases } from '../harness/fresh-databases.js';

const tableConfig = (cloud: string): string =>
  writeConfig(`
version: 1
databases:
  desktop:
    url: \${DESKTOP_DATABASE_URL}
  cloud:
${cloud}
forward: { from: desktop, to: cloud }
tables:
  - name: t
    primary_key: [id]
    direction: forward
`);

describe('TLS is what the config says: no URL parameter turns it off (the harness server has no TLS)', () => {
  const dbs = useFreshDatabases('urltls');
  const env = (cloudUrl: string): NodeJS.ProcessEnv => ({ ...process.env, DESKTOP_DATABASE_URL: dbs.desktopUrl, CLOUD_DATABASE_URL: cloudUrl });

  it('ssl: verify-full with ?ssl=0 in the URL is refused (exit 2) instead of connecting in plain text', async () => {
    const file = tableConfig('    url: ${CLOUD_DATABASE_URL}\n    ssl: verify-full\n    ca: /nonexistent/ca.pem');
    const result = await runCli(['validate', '--live', '--config', file], env(`${dbs.cloudUrl}?ssl=0`));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/databases\.cloud\.url: "ssl" in the URL is not used: TLS is set by ssl/);
  });

  it('ssl: require with a percent-encoded ?ssl%6Dode=disable still uses TLS, so a server without TLS is refused', async () => {
    const file = tableConfig('    url: ${CLOUD_DATABASE_URL}\n    ssl: require');
    const result = await runCli(['validate', '--live', '--config', file], env(`${dbs.cloudUrl}?ssl%6Dode=disable`));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot connect to cloud .*does not support SSL/);
  });

  it('ssl: require with ?sslmode=require&sslmode=disable is refused: the explicit ssl wins and the URL is contradictory', async () => {
    const file = tableConfig('    url: ${CLOUD_DATABASE_URL}\n    ssl: require');
    const result = await runCli(['validate', '--live', '--config', file], env(`${dbs.cloudUrl}?sslmode=require&sslmode=disable`));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/"sslmode" is given twice in the URL with different values/);
  });

  it('ssl: require with ?sslmode=disable in the URL still uses TLS (what validate reports is what the connection does)', async () => {
    const file = tableConfig('    url: ${CLOUD_DATABASE_URL}\n    ssl: require');
    const offline = await runCli(['validate', '--config', file], env(`${dbs.cloudUrl}?sslmode=disable`));
    expect(offline.stdout).toMatch(/cloud: .*, ssl require\n/);
    const live = await runCli(['validate', '--live', '--config', file], env(`${dbs.cloudUrl}?sslmode=disable`));
    expect(live.code).toBe(2);
    expect(live.stderr).toMatch(/does not support SSL/);
  });
});

describe('a URL without a host: PGHOST and PGPORT are reported and decide the TLS default', () => {
  const dbs = useFreshDatabases('pghost');

  it('validate reports the host and port PGHOST/PGPORT supply, and a remote PGHOST defaults to ssl require', async () => {
    const cloud = new URL(dbs.cloudUrl);
    const hostless = `postgres://${cloud.username}:${cloud.password}@${cloud.pathname}`;
    const file = tableConfig('    url: ${CLOUD_DATABASE_URL}');
    const remote = await runCli(['validate', '--config', file], {
      ...process.env,
      DESKTOP_DATABASE_URL: dbs.desktopUrl,
      CLOUD_DATABASE_URL: hostless,
      PGHOST: 'db.example.com',
      PGPORT: '6543',
    });
    expect(remote.code).toBe(0);
    expect(remote.stdout).toMatch(/cloud: db\.example\.com:6543\/\S+, ssl require \(default for this host\)/);
    const local = await runCli(['validate', '--live', '--config', file], {
      ...process.env,
      DESKTOP_DATABASE_URL: dbs.desktopUrl,
      CLOUD_DATABASE_URL: hostless,
      PGHOST: cloud.hostname,
      PGPORT: cloud.port,
    });
    expect(local.stdout).toContain(`cloud: ${cloud.hostname}:${cloud.port}/`);
  });
});

/**
 * A man in the middle for the remote default (ssl: require): it accepts TLS with a certificate no
 * one signed, then asks for the password in clear text (or MD5), and records what it is sent.
 */
class FakeServer {
  readonly received: Buffer[] = [];
  private server: Server | undefined;
  constructor(private readonly auth: 'cleartext' | 'md5') {}

  async start(cert: string, key: string): Promise<number> {
    this.server = createServer((socket: Socket) => {
      socket.once('data', () => {
        // SSLRequest: answer S and speak TLS from here on.
        socket.write('S');
        const tls = new TLSSocket(socket, { isServer: true, cert, key });
        tls.once('data', () => {
          // StartupMessage: ask for the password.
          const request = Buffer.alloc(this.auth === 'md5' ? 13 : 9);
          request.write('R', 0);
          request.writeInt32BE(this.auth === 'md5' ? 12 : 8, 1);
          request.writeInt32BE(this.auth === 'md5' ? 5 : 3, 5);
          tls.write(request);
          tls.on('data', (chunk: Buffer) => this.received.push(chunk));
        });
        tls.on('error', () => undefined);
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return (this.server?.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

describe('ssl: require never sends a password the server could read (SCRAM only over unverified TLS)', () => {
  const PASSWORD = 'cloud-Pa55word-do-not-leak';
  const dbs = useFreshDatabases('mitm');
  let pems: { cert: string; key: string };
  beforeAll(async () => {
    const generated = await selfsigned.generate([{ name: 'commonName', value: 'db.example.com' }], { days: 2, keySize: 2048 });
    pems = { cert: generated.cert, key: generated.private };
  });

  for (const auth of ['cleartext', 'md5'] as const) {
    describe(auth, () => {
      const fake = new FakeServer(auth);
      let port = 0;
      beforeAll(async () => {
        port = await fake.start(pems.cert, pems.key);
      });
      afterAll(async () => {
        await fake.stop();
      });

      it(`a server with an unknown certificate that asks for a ${auth} password gets nothing, and the error says why (exit 2)`, async () => {
        const file = tableConfig('    url: ${CLOUD_DATABASE_URL}\n    ssl: require');
        const result = await runCli(['validate', '--live', '--config', file], {
          ...process.env,
          DESKTOP_DATABASE_URL: dbs.desktopUrl,
          CLOUD_DATABASE_URL: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
        });
        expect(result.code).toBe(2);
        const sent = Buffer.concat(fake.received).toString('latin1');
        expect(sent).not.toContain(PASSWORD);
        expect(sent).not.toMatch(/^p/);
        expect(result.stderr).toMatch(new RegExp(`asked for the password in ${auth === 'md5' ? 'MD5' : 'clear text'} over a TLS connection whose certificate is not verified`));
        expect(result.stderr).toMatch(/ssl: verify-full/);
        expect(result.stderr).not.toContain(PASSWORD);
      });
    });
  }
});
