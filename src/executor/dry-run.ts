import type pg from 'pg';
import { STAGE_TABLE } from '../compiler/compile-plan.js';
import { quoteIdent } from '../compiler/quote-ident.js';
import type { ResolvedConfig } from '../config/types.js';
import { Databases } from './databases.js';

type Query = (...args: unknown[]) => unknown;

interface Shared {
  readonly client: pg.Client;
  /** The client's own query function, below the translation. */
  readonly raw: Query;
  /** Open step transactions, each a savepoint of the one real transaction. */
  depth: number;
  inUse: boolean;
}

const NOTHING = { command: '', rowCount: 0, rows: [], fields: [] };

/** The statement with its leading `--` comment lines and blanks removed. */
function head(sql: string): string {
  return sql.replace(/^(?:\s*--[^\n]*(?:\n|$))*\s*/, '');
}

/**
 * `apply --dry-run` (issue 14): one transaction per database for the whole run, rolled back once
 * at the end, so a step sees what the steps before it would have written (a child table's rows
 * find the parents this run would insert). Each database has one connection; the transaction
 * statements a step sends on it become savepoints: its BEGIN a SAVEPOINT, its COMMIT a RELEASE
 * (its writes stay for the next steps), its ROLLBACK a rollback to the savepoint (its writes are
 * undone, the earlier steps' stay). The run is REPEATABLE READ: every step reads one snapshot of
 * what others committed, plus the dry run's own writes. Steps run one at a time.
 */
export class DryRunDatabases extends Databases {
  private readonly shared = new Map<string, Shared>();

  constructor(config: ResolvedConfig) {
    super(config, { reuse: false });
  }

  /** The database's one connection, inside the dry run's transaction (a second, plain one while it is in use). */
  override async client(name: string): Promise<pg.Client> {
    const existing = this.shared.get(name);
    if (existing !== undefined && !existing.inUse) {
      existing.inUse = true;
      return existing.client;
    }
    if (existing !== undefined) return await super.client(name);
    const client = await super.client(name);
    const raw = client.query as unknown as Query;
    await raw.call(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
    const entry: Shared = { client, raw, depth: 0, inUse: true };
    (client as unknown as { query: Query }).query = (...args: unknown[]) => translate(entry, args);
    this.shared.set(name, entry);
    return client;
  }

  /**
   * Take a connection back. The step's staging table would be dropped by a real COMMIT; here its
   * transaction goes on, so it is dropped now, for the next step to create its own.
   */
  override async release(client: pg.Client): Promise<void> {
    const [database, entry] = [...this.shared].find(([, e]) => e.client === client) ?? [];
    if (database === undefined || entry === undefined) {
      await super.release(client);
      return;
    }
    entry.inUse = false;
    entry.depth = 0;
    try {
      await (entry.raw.call(client, `DROP TABLE IF EXISTS pg_temp.${quoteIdent(STAGE_TABLE)}`) as Promise<unknown>);
    } catch {
      // The transaction broke (a cut COPY, an error outside any step's savepoint): what the dry run
      // wrote on this database is gone; the next step starts a new transaction of its own.
      this.shared.delete(database);
      await super.release(client);
    }
  }

  /** Roll back everything the dry run wrote, on every database, then close. */
  override async close(): Promise<void> {
    for (const entry of this.shared.values()) {
      await (entry.raw.call(entry.client, 'ROLLBACK') as Promise<unknown>).catch(() => undefined);
    }
    this.shared.clear();
    await super.close();
  }
}

/** A step's transaction statement on the shared connection, as the savepoint it stands for. */
function translate(entry: Shared, args: unknown[]): unknown {
  const send = (sql: string): Promise<unknown> => entry.raw.call(entry.client, sql) as Promise<unknown>;
  if (typeof args[0] !== 'string') return entry.raw.call(entry.client, ...args);
  const sql = head(args[0]);
  if (/^BEGIN\b/i.test(sql)) {
    entry.depth++;
    return send('SAVEPOINT bisync_dry_run_step');
  }
  if (/^COMMIT\s*;?\s*$/i.test(sql)) {
    if (entry.depth === 0) return Promise.resolve(NOTHING);
    entry.depth--;
    return send('RELEASE SAVEPOINT bisync_dry_run_step');
  }
  if (/^ROLLBACK\s*;?\s*$/i.test(sql)) {
    if (entry.depth === 0) return Promise.resolve(NOTHING);
    entry.depth--;
    return Promise.all([send('ROLLBACK TO SAVEPOINT bisync_dry_run_step'), send('RELEASE SAVEPOINT bisync_dry_run_step')]).then((answers) => answers[1]);
  }
  return entry.raw.call(entry.client, ...args);
}
