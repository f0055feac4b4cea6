// A TCP proxy on a free loopback port in front of one target, for cutting client connections at chosen
// moments: drop everything the server sends (so an `ok` never arrives), destroy every connection at once,
// or refuse new ones for a while. Bytes pass through untouched; the proxy knows nothing of WebSocket.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private refusing = false;
  private holdingDownstream = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    const proxy = new TcpProxy(server, typeof addr === 'object' && addr !== null ? addr.port : 0, targetPort);
    server.on('connection', (c) => proxy.accept(c));
    return proxy;
  }

  /** ws://127.0.0.1:<port>/ws */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** While on, new connections are closed at once (a gateway that is down). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** While on, what servers send is dropped (the client's frames still arrive at the server). */
  holdDownstream(on: boolean): void {
    this.holdingDownstream = on;
  }

  /** Destroys every open connection, both ways, without a close handshake. */
  cut(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort });
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (b) => upstream.write(b));
    upstream.on('data', (b) => {
      if (!this.holdingDownstream) client.write(b);
    });
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  }
}
