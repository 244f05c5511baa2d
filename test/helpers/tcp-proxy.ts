import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A loopback TCP proxy that a test can cut and restore, to simulate a database or Redis that
 * becomes unreachable (and comes back) without touching the shared server itself.
 */
export interface TcpProxy {
  port: number;
  /** Stop accepting and destroy every open connection. */
  cut(): Promise<void>;
  /** Accept connections again, on the same port. */
  restore(): Promise<void>;
  /**
   * The open connections go silent: nothing is forwarded either way and nothing is closed (no
   * RST), as after a host crash or a failover; new connections still work.
   */
  silence(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let server: Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((client) => {
        const upstream = connect(targetPort, targetHost);
        sockets.add(client);
        sockets.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        client.pipe(upstream).pipe(client);
        pairs.add([client, upstream]);
      });
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => {
        const addr = srv.address();
        if (typeof addr === "object" && addr) port = addr.port;
        server = srv;
        resolve();
      });
    });

  const cut = async () => {
    const srv = server;
    server = undefined;
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
    silence() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
      pairs.clear();
    },
    close: cut,
  };
}
