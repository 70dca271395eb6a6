import pg from 'pg';
import type { ResolvedConfig, ResolvedDatabase } from '../config/types.js';
import { clientConfig, connect } from './connect.js';

/** Connections to the two databases of a config, opened on demand and closed together. */
export class Databases {
  private readonly open = new Set<pg.Client>();

  constructor(private readonly config: ResolvedConfig) {}

  database(name: string): ResolvedDatabase {
    const db = this.config.databases[name];
    if (db === undefined) throw new Error(`no database named ${name} in the config`);
    return db;
  }

  /** A new connection (connection errors are exit-2 BisyncErrors that never hold the password). */
  async client(name: string): Promise<pg.Client> {
    const client = await connect(this.database(name));
    this.open.add(client);
    return client;
  }

  /** Close a connection; one that does not close within a few seconds is cut. */
  async release(client: pg.Client): Promise<void> {
    this.open.delete(client);
    const ended = client.end().catch(() => undefined);
    const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 3000).unref());
    if ((await Promise.race([ended, timer])) === 'late') abandon(client);
  }

  async close(): Promise<void> {
    await Promise.all([...this.open].map((c) => this.release(c)));
  }

  /** The driver settings, for tools that need their own client. */
  clientConfig(name: string): pg.ClientConfig {
    return clientConfig(this.database(name));
  }
}

/**
 * Cut a connection without a goodbye: for a connection stuck mid-protocol (e.g. a COPY whose reader
 * is gone), where any further query would wait forever. The server ends its transaction.
 */
export function abandon(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
