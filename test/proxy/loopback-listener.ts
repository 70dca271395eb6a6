import net from 'node:net';

/**
 * The part every test and bench proxy shares: listen on 127.0.0.1 (port 0: the OS picks one), and
 * for each accepted connection open one to the PostgreSQL server of a loopback URL, holding the
 * client's bytes back until that connection is up. What happens to the bytes in between is the
 * proxy's own business (the fault proxy cuts, the link proxy delays and throttles).
 */
export class LoopbackListener {
  private readonly server: net.Server;
  private opened = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    onConnection: (id: number, client: net.Socket, server: net.Socket) => void,
  ) {
    this.server = net.createServer((client) => {
      const id = ++this.opened;
      client.setNoDelay(true);
      const server = net.connect({ host: this.targetHost, port: this.targetPort });
      server.setNoDelay(true);
      client.pause();
      server.once('connect', () => client.resume());
      onConnection(id, client, server);
    });
  }

  /** Listen in front of the server of `url` (which must be on loopback: these proxies are for tests and benches). */
  static async start(url: string, onConnection: (id: number, client: net.Socket, server: net.Socket) => void): Promise<LoopbackListener> {
    const parsed = new URL(url);
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (!['127.0.0.1', 'localhost', '::1'].includes(host)) throw new Error(`the proxy only forwards to loopback, not ${host}`);
    const listener = new LoopbackListener(host, Number(parsed.port || 5432), onConnection);
    await new Promise<void>((resolve, reject) => {
      listener.server.once('error', reject);
      listener.server.listen(0, '127.0.0.1', () => resolve());
    });
    return listener;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** Connections accepted since the proxy started. */
  get connectionCount(): number {
    return this.opened;
  }

  /** Stop accepting; resolves once the listening socket is closed (the caller cuts open connections). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
