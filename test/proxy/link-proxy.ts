import type net from 'node:net';
import { LoopbackListener } from './loopback-listener.js';

/** The network path a link proxy imitates. */
export interface LinkShape {
  /** Round-trip time added to every exchange, in milliseconds (half each way). 0: none. */
  rttMs: number;
  /** Bandwidth of the link in each direction, in bits per second, shared by all its connections. Infinity: unlimited. */
  bitsPerSecond: number;
}

/** What crossed the link since the proxy started (or since `resetStats`). */
export interface LinkStats {
  /** Bytes the clients sent (towards the database: "uploaded" when the database is the cloud). */
  bytesFromClient: number;
  /** Bytes the database sent back. */
  bytesFromServer: number;
  /** Times the traffic of a connection changed direction, summed over connections (as the issue counts them). */
  directionChanges: number;
  /** Times a client spoke after the server had (or first spoke): the round trips it waited for. */
  roundTrips: number;
  /** Connections opened. */
  connections: number;
}

type Side = 'client' | 'server';

/** Pause a sender once this much is queued on the link for one connection, resume below a quarter of it. */
const HIGH_WATER = 4 * 1024 * 1024;

interface Queued {
  data: Buffer;
  deliverAt: number;
}

class Lane {
  readonly queue: Queued[] = [];
  queuedBytes = 0;
  timer: NodeJS.Timeout | undefined;
}

/**
 * A TCP proxy that makes a loopback PostgreSQL server look far away: every chunk waits for its turn
 * on a link of limited bandwidth (shared by all connections in that direction, like an office's
 * uplink), then for half the round-trip time, and reaches the peer in order. It counts the bytes
 * each way, the direction changes and round trips, and the connections, for the bench's report.
 * The bytes themselves pass unchanged (it works for TLS too).
 */
export class LinkProxy {
  private readonly open = new Set<{ client: net.Socket; server: net.Socket }>();
  /** When the link in each direction is next free (ms, performance.now()). */
  private readonly linkFree: Record<Side, number> = { client: 0, server: 0 };
  private stats: LinkStats = LinkProxy.zero();
  private connectionsAtReset = 0;

  private constructor(
    private readonly listener: LoopbackListener,
    private readonly shape: LinkShape,
  ) {}

  static async start(url: string, shape: LinkShape): Promise<LinkProxy> {
    let proxy: LinkProxy | undefined;
    const listener = await LoopbackListener.start(url, (_id, client, server) => proxy?.accept(client, server));
    proxy = new LinkProxy(listener, shape);
    return proxy;
  }

  private static zero(): LinkStats {
    return { bytesFromClient: 0, bytesFromServer: 0, directionChanges: 0, roundTrips: 0, connections: 0 };
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string {
    return this.listener.url(url);
  }

  /** The counts since the last reset. */
  get current(): LinkStats {
    return { ...this.stats, connections: this.listener.connectionCount - this.connectionsAtReset };
  }

  resetStats(): void {
    this.stats = LinkProxy.zero();
    this.connectionsAtReset = this.listener.connectionCount;
  }

  async stop(): Promise<void> {
    for (const c of this.open) {
      c.client.destroy();
      c.server.destroy();
    }
    await this.listener.close();
  }

  private accept(client: net.Socket, server: net.Socket): void {
    const pair = { client, server };
    this.open.add(pair);
    const lanes: Record<Side, Lane> = { client: new Lane(), server: new Lane() };
    let last: Side | undefined;
    const close = (): void => {
      for (const lane of Object.values(lanes)) clearTimeout(lane.timer);
      client.destroy();
      server.destroy();
      this.open.delete(pair);
    };
    const receive = (from: Side, chunk: Buffer): void => {
      if (from === 'client') this.stats.bytesFromClient += chunk.length;
      else this.stats.bytesFromServer += chunk.length;
      if (last !== from) {
        if (last !== undefined) this.stats.directionChanges++;
        if (from === 'client') this.stats.roundTrips++;
        last = from;
      }
      this.send(from, chunk, lanes[from], from === 'client' ? client : server, from === 'client' ? server : client);
    };
    client.on('data', (chunk: Buffer) => receive('client', chunk));
    server.on('data', (chunk: Buffer) => receive('server', chunk));
    client.on('error', close).on('close', close);
    server.on('error', close).on('close', close);
  }

  /** Queue `chunk` from `sender` behind the link's earlier traffic, and deliver it to `peer` when it has crossed. */
  private send(from: Side, chunk: Buffer, lane: Lane, sender: net.Socket, peer: net.Socket): void {
    const now = performance.now();
    const wire = Number.isFinite(this.shape.bitsPerSecond) ? (chunk.length * 8 * 1000) / this.shape.bitsPerSecond : 0;
    const departed = Math.max(now, this.linkFree[from]) + wire;
    this.linkFree[from] = departed;
    lane.queue.push({ data: chunk, deliverAt: departed + this.shape.rttMs / 2 });
    lane.queuedBytes += chunk.length;
    if (lane.queuedBytes > HIGH_WATER) sender.pause();
    if (lane.timer === undefined) this.pump(lane, sender, peer);
  }

  private pump(lane: Lane, sender: net.Socket, peer: net.Socket): void {
    lane.timer = undefined;
    const now = performance.now();
    while (lane.queue.length > 0 && (lane.queue[0]?.deliverAt ?? 0) <= now) {
      const next = lane.queue.shift() as Queued;
      lane.queuedBytes -= next.data.length;
      if (!peer.destroyed) peer.write(next.data);
    }
    if (lane.queuedBytes < HIGH_WATER / 4 && sender.isPaused()) sender.resume();
    const head = lane.queue[0];
    if (head !== undefined) lane.timer = setTimeout(() => this.pump(lane, sender, peer), Math.max(0, head.deliverAt - now));
  }
}
