import { AsyncLocalStorage } from 'node:async_hooks';
import type net from 'node:net';
import pg from 'pg';
import type { ResolvedConfig, ResolvedDatabase } from '../config/types.js';
import { connect } from './connect.js';

/** What a piece of work (one step) cost on the wire, counted by `Databases.counting`. */
export interface WireCounts {
  /**
   * Round trips, connection set-up aside: the times the step sent something while nothing of it
   * was unanswered on either database (a COPY counts once). Waits on the two databases that overlap
   * in time count once: this is the number of round-trip latencies the step adds up.
   */
  roundTrips: number;
  /** The same per database (a COPY counts once on each side): what each link carries. */
  roundTripsByDatabase: Record<string, number>;
  /** Connections opened for it (each costs a few more round trips: TCP, TLS, authentication). */
  connectionsOpened: number;
  bytesSent: number;
  bytesReceived: number;
}

interface Tracked {
  readonly database: string;
  /** The transaction status of the last ReadyForQuery: `I` idle, `T` in a transaction, `E` failed one. */
  status: string;
  broken: boolean;
  /** Socket byte counters when the client was last handed out. */
  sentAtAcquire: number;
  receivedAtAcquire: number;
}

/** Connections cut by `abandon`: never handed out again. */
const abandoned = new WeakSet<pg.Client>();

const socketOf = (client: pg.Client): net.Socket | undefined => (client as unknown as { connection?: { stream?: net.Socket } }).connection?.stream;

/**
 * Connections to the two databases of a config, opened on demand and closed together. With
 * `reuse`, a connection given back idle (no transaction open, nothing queued) is handed out again
 * to the next step on the same database, so a run opens at most `concurrency` connections per
 * database instead of two per step (SPEC §8: over a WAN each costs TCP, TLS and authentication).
 * Nothing bisync sets outlives a transaction (settings are transaction-local, staging drops at
 * commit, locks are transaction locks), so a reused connection starts each step as a new one would.
 */
export class Databases {
  private readonly open = new Map<pg.Client, Tracked>();
  private readonly idle = new Map<string, pg.Client[]>();
  private readonly counts = new AsyncLocalStorage<WireCounts>();
  /** Per database, the quickest answer seen to a query sent on an idle connection (ms): the link's round trip, at most. */
  private readonly quickest = new Map<string, number>();

  constructor(
    private readonly config: ResolvedConfig,
    private readonly options: { reuse?: boolean } = {},
  ) {}

  database(name: string): ResolvedDatabase {
    const db = this.config.databases[name];
    if (db === undefined) throw new Error(`no database named ${name} in the config`);
    return db;
  }

  /** Run `fn`, counting the round trips, bytes and connections of the clients it uses. */
  async counting<T>(fn: () => Promise<T>): Promise<{ result: T; wire: WireCounts }> {
    const wire: WireCounts = { roundTrips: 0, roundTripsByDatabase: {}, connectionsOpened: 0, bytesSent: 0, bytesReceived: 0 };
    const result = await this.counts.run(wire, fn);
    unansweredOf.delete(wire);
    return { result, wire };
  }

  /**
   * What the piece of work running now has cost so far, with the bytes of the connections it still
   * holds (`held`): for a run row written before the step ends.
   */
  soFar(held: readonly (pg.Client | undefined)[]): WireCounts | undefined {
    const wire = this.counts.getStore();
    if (wire === undefined) return undefined;
    const out = { ...wire, roundTripsByDatabase: { ...wire.roundTripsByDatabase } };
    for (const client of held) {
      const tracked = client === undefined ? undefined : this.open.get(client);
      const socket = client === undefined ? undefined : socketOf(client);
      if (tracked === undefined || socket === undefined) continue;
      out.bytesSent += socket.bytesWritten - tracked.sentAtAcquire;
      out.bytesReceived += socket.bytesRead - tracked.receivedAtAcquire;
    }
    return out;
  }

  /**
   * The quickest answer seen so far from `name` to a query sent while its connection had nothing
   * unanswered (ms): an upper bound of one round trip to that server (the link's latency plus the
   * server's time for the quickest statement, e.g. a BEGIN). Undefined before any query was answered.
   */
  quickestAnswerMs(name: string): number | undefined {
    return this.quickest.get(name);
  }

  /** A connection: an idle one of this run when reusing, else a new one (connection errors are exit-2 BisyncErrors without the password). */
  async client(name: string): Promise<pg.Client> {
    const pooled = this.idle.get(name)?.pop();
    const client = pooled ?? (await this.connectTracked(name));
    const tracked = this.open.get(client);
    const socket = socketOf(client);
    if (tracked !== undefined) {
      tracked.sentAtAcquire = socket?.bytesWritten ?? 0;
      tracked.receivedAtAcquire = socket?.bytesRead ?? 0;
    }
    return client;
  }

  private async connectTracked(name: string): Promise<pg.Client> {
    const client = await connect(this.database(name));
    const tracked: Tracked = { database: name, status: 'I', broken: false, sentAtAcquire: 0, receivedAtAcquire: 0 };
    this.open.set(client, tracked);
    const wire = this.counts.getStore();
    if (wire !== undefined) wire.connectionsOpened++;
    const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
    connection.on('readyForQuery', (message: { status?: string }) => {
      tracked.status = message.status ?? 'I';
    });
    const lost = (): void => {
      tracked.broken = true;
      const list = this.idle.get(name);
      if (list !== undefined) this.idle.set(name, list.filter((c) => c !== client));
    };
    client.on('end', lost);
    client.on('error', lost);
    pipelined(client, name, () => this.counts.getStore(), (ms) => {
      this.quickest.set(name, Math.min(ms, this.quickest.get(name) ?? Infinity));
    });
    return client;
  }

  /**
   * Give a connection back: kept for the next step when reusing and it is idle and whole, else
   * closed (one that does not close within a few seconds is cut).
   */
  async release(client: pg.Client): Promise<void> {
    const tracked = this.open.get(client);
    const socket = socketOf(client);
    const wire = this.counts.getStore();
    if (tracked !== undefined && wire !== undefined && socket !== undefined) {
      wire.bytesSent += socket.bytesWritten - tracked.sentAtAcquire;
      wire.bytesReceived += socket.bytesRead - tracked.receivedAtAcquire;
    }
    if (this.options.reuse === true && tracked !== undefined && this.reusable(client, tracked)) {
      this.idle.set(tracked.database, [...(this.idle.get(tracked.database) ?? []), client]);
      return;
    }
    await this.end(client);
  }

  private reusable(client: pg.Client, tracked: Tracked): boolean {
    const internal = client as unknown as { _ending?: boolean; _activeQuery?: unknown; _queryQueue?: unknown[] };
    return !tracked.broken && !abandoned.has(client) && tracked.status === 'I' && internal._ending !== true && internal._activeQuery == null && (internal._queryQueue?.length ?? 0) === 0;
  }

  private async end(client: pg.Client): Promise<void> {
    this.open.delete(client);
    for (const [name, list] of this.idle) this.idle.set(name, list.filter((c) => c !== client));
    const ended = client.end().catch(() => undefined);
    const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 3000).unref());
    if ((await Promise.race([ended, timer])) === 'late') abandon(client);
  }

  /** Cut every open connection at once (Ctrl-C): the servers roll back whatever was not committed. */
  cutAll(): void {
    this.idle.clear();
    for (const client of this.open.keys()) abandon(client);
  }

  async close(): Promise<void> {
    await Promise.all([...this.open.keys()].map((c) => this.end(c)));
  }
}

interface PgInternals {
  pipeline: boolean;
  _activeQuery: unknown;
  _queryQueue: unknown[];
  _sentQueryQueue: unknown[];
}

/** Per counted piece of work: queries (and COPYs) sent on any of its connections and not yet answered. */
const unansweredOf = new WeakMap<WireCounts, number>();

/** Count a query about to be sent on `database` while `own` of this connection's are unanswered. */
function countSend(wire: WireCounts | undefined, database: string, own: number): void {
  if (wire === undefined) return;
  const pending = unansweredOf.get(wire) ?? 0;
  if (pending === 0) wire.roundTrips++;
  if (own === 0) wire.roundTripsByDatabase[database] = (wire.roundTripsByDatabase[database] ?? 0) + 1;
  unansweredOf.set(wire, pending + 1);
}

function countAnswer(wire: WireCounts | undefined): void {
  if (wire !== undefined) unansweredOf.set(wire, Math.max(0, (unansweredOf.get(wire) ?? 0) - 1));
}

/**
 * Put a client in pipeline mode (node-postgres writes each query without waiting for the answer
 * to the one before, so statements sent together cost one round trip; each keeps its own Sync, so
 * the server runs them one by one, as if sent one at a time), and count round trips: a query sent
 * while none is unanswered starts one. COPY cannot be pipelined: the client leaves pipeline mode
 * for it (nothing may be unanswered then) and returns to it when the COPY has ended.
 */
function pipelined(client: pg.Client, database: string, counts: () => WireCounts | undefined, answeredIn: (ms: number) => void): void {
  const raw = client as unknown as PgInternals;
  raw.pipeline = true;
  let unanswered = 0;
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const wire = counts();
    const first = args[0] as { submit?: unknown; handleReadyForQuery?: (connection: unknown) => void } | undefined;
    if (typeof first?.submit === 'function') {
      countSend(wire, database, 0);
      const done = (): void => countAnswer(wire);
      const stream = first as unknown as NodeJS.EventEmitter;
      let settled = false;
      const once = (): void => {
        if (!settled) done();
        settled = true;
      };
      stream.once?.('finish', once);
      stream.once?.('end', once);
      stream.once?.('error', once);
      stream.once?.('close', once);
      if (raw.pipeline) {
        if (raw._activeQuery != null || raw._sentQueryQueue.length > 0 || raw._queryQueue.length > 0) {
          throw new Error('bisync: a COPY was sent behind unanswered queries');
        }
        raw.pipeline = false;
        const ended = first.handleReadyForQuery?.bind(first);
        first.handleReadyForQuery = (connection: unknown) => {
          raw.pipeline = true;
          ended?.(connection);
        };
      }
      return query(...args);
    }
    countSend(wire, database, unanswered);
    // Sent on an idle connection: its answer takes one round trip plus the server's time for it.
    const sentAt = unanswered === 0 ? performance.now() : undefined;
    unanswered++;
    const answered = (): void => {
      unanswered--;
      countAnswer(wire);
      if (sentAt !== undefined) answeredIn(performance.now() - sentAt);
    };
    const result = query(...args) as Promise<unknown>;
    result.then(answered, answered);
    return result;
  };
}

/**
 * Cut a connection without a goodbye: for a connection stuck mid-protocol (e.g. a COPY whose reader
 * is gone), where any further query would wait forever. The server ends its transaction.
 */
export function abandon(client: pg.Client): void {
  abandoned.add(client);
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
