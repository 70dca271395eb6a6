import type net from 'node:net';
import { LoopbackListener } from '../proxy/loopback-listener.js';

/**
 * A fault-injecting TCP proxy for the PostgreSQL wire protocol, for tests only.
 *
 * It listens on 127.0.0.1 (test/proxy/loopback-listener.ts, shared with the bench's link proxy),
 * forwards every connection to one PostgreSQL server on loopback, and follows the protocol just
 * enough to cut a connection at a chosen point: after N bytes in either direction, or at a message — the client's CopyData (COPY … FROM STDIN on
 * the target), the server's CopyData (COPY … TO STDOUT on the source), any message type, or a
 * Query/Parse whose SQL matches. A cut destroys both sockets, as a dropped network path or a
 * crashed peer would. Memory per connection is bounded (one message held back at most).
 *
 * The parser is deliberately minimal: after the untyped startup packet (and SSL/GSS requests, whose
 * one-byte answer is untyped too), every message is 1 type byte + an int32 length that counts
 * itself. An encrypted session (server answered 'S'/'G') is passed through unparsed.
 */

export type Trigger =
  /** Cut after this many bytes flowed in one direction (counted from when the fault watches the connection). */
  | { kind: 'bytes'; from: 'client' | 'server'; after: number }
  /** The client sends CopyData ('d'): COPY … FROM STDIN, i.e. rows streaming into the target. */
  | { kind: 'copy-in' }
  /** The server sends CopyData ('d'): COPY … TO STDOUT, i.e. rows streaming out of the source. */
  | { kind: 'copy-out' }
  /** A message of this type from this side, e.g. the client's CopyDone ('c') that ends a COPY IN. */
  | { kind: 'message'; from: 'client' | 'server'; type: string }
  /** The client sends a Query ('Q') or Parse ('P') whose SQL matches. */
  | { kind: 'sql'; match: RegExp };

export interface Fault {
  trigger: Trigger;
  /** Cut at the nth matching message of a connection (default 1). Ignored for `bytes`. */
  nth?: number;
  /**
   * `before` (default): the matching message never reaches its peer. `reply` (client messages only):
   * the message is delivered, and the connection is cut when the server starts answering it — the
   * server has acted (e.g. committed) but the client never hears so.
   */
  cut?: 'before' | 'reply';
  /** Only watch a connection once its client has sent SQL matching this (e.g. the step's BEGIN). */
  watchFrom?: RegExp;
  /** How many connections to cut before the fault disarms itself (default 1; Infinity: every one). */
  times?: number;
}

export interface CutRecord {
  connection: number;
  trigger: Trigger['kind'];
  /** The SQL (first 120 characters) or message type where the cut happened. */
  at: string;
}

type Side = 'client' | 'server';

interface Stream {
  /** Bytes received from this side but not yet forwarded (at most one partial message). */
  pending: Buffer;
  /** Bytes forwarded from this side since the connection became watched. */
  watchedBytes: number;
  /** Untyped packets still expected from this side (client: startup; server: SSL/GSS answer byte). */
  untyped: boolean;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** Bound on what one connection may hold back (the largest message bisync sends is far smaller). */
const MAX_PENDING = 64 * 1024 * 1024;

class Connection {
  readonly streams: Record<Side, Stream> = {
    client: { pending: Buffer.alloc(0), watchedBytes: 0, untyped: true },
    server: { pending: Buffer.alloc(0), watchedBytes: 0, untyped: false },
  };
  watched = false;
  matches = 0;
  passthrough = false;
  cutOnReply = false;
  dead = false;

  constructor(
    readonly id: number,
    readonly client: net.Socket,
    readonly server: net.Socket,
    private readonly proxy: FaultProxy,
  ) {}

  /** Forget what an earlier fault saw on this connection. */
  reset(): void {
    this.watched = false;
    this.matches = 0;
    this.streams.client.watchedBytes = 0;
    this.streams.server.watchedBytes = 0;
  }

  receive(from: Side, chunk: Buffer): void {
    if (this.dead) return;
    if (from === 'server' && this.cutOnReply) {
      // The server is answering the message we let through: it has acted, the client never hears.
      this.cut();
      return;
    }
    const stream = this.streams[from];
    const buf = stream.pending.length === 0 ? chunk : Buffer.concat([stream.pending, chunk]);
    if (buf.length > MAX_PENDING) {
      this.cut();
      return;
    }
    let sent = 0;
    let offset = 0;
    while (!this.passthrough) {
      let size: number;
      let type = '';
      if (stream.untyped) {
        if (from === 'server') size = 1;
        else if (buf.length - offset < 4) break;
        else size = buf.readInt32BE(offset);
      } else {
        if (buf.length - offset < 5) break;
        type = String.fromCharCode(buf[offset] as number);
        size = 1 + buf.readInt32BE(offset + 1);
      }
      if (size < 1 || buf.length - offset < size) break;
      const message = buf.subarray(offset, offset + size);
      if (stream.untyped) {
        this.untypedPacket(from, message);
      } else {
        const wasWatched = this.watched;
        const decision = this.proxy.decide(this, from, type, message);
        if (this.watched && !wasWatched) {
          // Bytes before the message that starts the watch do not count towards a byte fault.
          this.write(from, buf.subarray(sent, offset), false);
          sent = offset;
        }
        if (decision === 'before') {
          if (this.write(from, buf.subarray(sent, offset))) this.cutAfterFlush(from);
          return;
        }
        if (decision === 'reply') this.cutOnReply = true;
      }
      offset += size;
    }
    if (this.passthrough) offset = buf.length;
    this.write(from, buf.subarray(sent, offset));
    stream.pending = buf.subarray(offset);
  }

  /** Startup, SSL/GSS requests and the server's one-byte answer to them. */
  private untypedPacket(from: Side, packet: Buffer): void {
    if (from === 'server') {
      const answer = String.fromCharCode(packet[0] as number);
      this.streams.server.untyped = false;
      if (answer === 'S' || answer === 'G') this.passthrough = true;
      return;
    }
    const code = packet.length >= 8 ? packet.readInt32BE(4) : 0;
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      this.streams.server.untyped = true;
      return;
    }
    this.streams.client.untyped = false;
    if (code === CANCEL_REQUEST) this.passthrough = true;
  }

  /**
   * Send `data` on to the peer of `from`, honouring a byte-count fault: past the limit only the
   * bytes up to it go through, and the connection is cut. Returns false when it cut.
   */
  private write(from: Side, data: Buffer, counted = this.watched): boolean {
    if (this.dead) return false;
    const stream = this.streams[from];
    const limit = counted ? this.proxy.byteLimit(from) : undefined;
    if (limit !== undefined && stream.watchedBytes + data.length >= limit) {
      const allowed = data.subarray(0, Math.max(0, limit - stream.watchedBytes));
      stream.watchedBytes += allowed.length;
      this.proxy.recordCut(this, 'bytes', `after ${stream.watchedBytes} bytes from the ${from}`);
      if (allowed.length > 0) this.peer(from).write(allowed);
      this.cutAfterFlush(from);
      return false;
    }
    if (counted) stream.watchedBytes += data.length;
    if (data.length > 0) this.peer(from).write(data);
    return true;
  }

  private peer(from: Side): net.Socket {
    return from === 'client' ? this.server : this.client;
  }

  /** Cut once what was already written towards the peer of `from` has left (so the cut lands exactly there). */
  private cutAfterFlush(from: Side): void {
    this.dead = true;
    this.peer(from).end(() => this.cut());
    // Never wait long: a peer that does not take the bytes is cut anyway.
    setTimeout(() => this.cut(), 200).unref();
  }

  cut(): void {
    this.dead = true;
    this.client.destroy();
    this.server.destroy();
  }
}

function describe(type: string, message: Buffer): string {
  const sql = sqlOf(type, message);
  return sql === undefined ? `message '${type}'` : sql.replace(/\s+/g, ' ').trim().slice(0, 120);
}

/** The SQL text of a Query ('Q': text\0) or Parse ('P': name\0 text\0 …) message. */
function sqlOf(type: string, message: Buffer): string | undefined {
  let start = 5;
  if (type === 'P') start = message.indexOf(0, start) + 1;
  else if (type !== 'Q') return undefined;
  const end = message.indexOf(0, start);
  return message.toString('utf8', start, end < 0 ? message.length : end);
}

export class FaultProxy {
  private readonly connections = new Set<Connection>();
  private fault: Fault | undefined;
  private remainingCuts = 0;
  /** Every cut made since the proxy started, in order. */
  readonly cuts: CutRecord[] = [];

  private constructor(private readonly listener: LoopbackListener) {}

  /** Start a proxy in front of the PostgreSQL server of `url` (which must be on loopback). */
  static async start(url: string): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const listener = await LoopbackListener.start(url, (id, client, server) => proxy?.accept(id, client, server));
    proxy = new FaultProxy(listener);
    return proxy;
  }

  get port(): number {
    return this.listener.port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string {
    return this.listener.url(url);
  }

  /** Connections accepted since the proxy started. */
  get connectionCount(): number {
    return this.listener.connectionCount;
  }

  /** Arm a fault (replacing any armed one). */
  arm(fault: Fault): void {
    this.fault = fault;
    this.remainingCuts = fault.times ?? 1;
    for (const c of this.connections) c.reset();
  }

  disarm(): void {
    this.fault = undefined;
    this.remainingCuts = 0;
  }

  /** Cut every open connection now (e.g. a network outage). */
  cutAll(): void {
    for (const c of this.connections) c.cut();
  }

  async stop(): Promise<void> {
    this.disarm();
    this.cutAll();
    await this.listener.close();
  }

  private accept(id: number, client: net.Socket, server: net.Socket): void {
    const connection = new Connection(id, client, server, this);
    this.connections.add(connection);
    client.on('data', (chunk: Buffer) => connection.receive('client', chunk));
    server.on('data', (chunk: Buffer) => connection.receive('server', chunk));
    const close = (): void => {
      connection.cut();
      this.connections.delete(connection);
    };
    client.on('error', close).on('close', close);
    server.on('error', close).on('close', close);
  }

  /** @internal Whether (and how) the armed fault cuts at this message; marks the connection watched. */
  decide(connection: Connection, from: Side, type: string, message: Buffer): 'before' | 'reply' | undefined {
    const fault = this.fault;
    if (fault === undefined || this.remainingCuts <= 0) return undefined;
    const sql = from === 'client' ? sqlOf(type, message) : undefined;
    if (!connection.watched) {
      if (fault.watchFrom !== undefined && !(sql !== undefined && fault.watchFrom.test(sql))) return undefined;
      connection.watched = true;
    }
    const trigger = fault.trigger;
    let hit = false;
    if (trigger.kind === 'copy-in') hit = from === 'client' && type === 'd';
    else if (trigger.kind === 'copy-out') hit = from === 'server' && type === 'd';
    else if (trigger.kind === 'message') hit = from === trigger.from && type === trigger.type;
    else if (trigger.kind === 'sql') hit = sql !== undefined && trigger.match.test(sql);
    if (!hit) return undefined;
    connection.matches++;
    if (connection.matches !== (fault.nth ?? 1)) return undefined;
    const mode = fault.cut === 'reply' && from === 'client' ? 'reply' : 'before';
    this.recordCut(connection, trigger.kind, describe(type, message));
    return mode;
  }

  /** @internal The byte limit of an armed `bytes` fault for this direction. */
  byteLimit(from: Side): number | undefined {
    const trigger = this.fault?.trigger;
    if (trigger?.kind !== 'bytes' || this.remainingCuts <= 0 || trigger.from !== from) return undefined;
    return trigger.after;
  }

  /** @internal */
  recordCut(connection: Connection, trigger: Trigger['kind'], at: string): void {
    this.cuts.push({ connection: connection.id, trigger, at });
    this.remainingCuts--;
  }
}
