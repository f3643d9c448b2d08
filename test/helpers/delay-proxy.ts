/**
 * A userspace TCP proxy that holds every chunk for a fixed delay in each direction, order kept:
 * inter-region latency between nats-servers, since the kernel here has no netem.
 */
import net from 'node:net';

export class DelayProxy {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** Listens on a free port and forwards to `targetPort`, each chunk `delayMs` late. */
  static async start(targetPort: number, delayMs: number): Promise<DelayProxy> {
    let proxy: DelayProxy | undefined;
    const server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      proxy?.track(client, upstream);
      const pipe = (from: net.Socket, to: net.Socket) => {
        from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
        from.on('close', () => setTimeout(() => to.destroy(), delayMs));
        from.on('error', () => to.destroy());
      };
      pipe(client, upstream);
      pipe(upstream, client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new DelayProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  private track(...sockets: net.Socket[]): void {
    for (const s of sockets) {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
