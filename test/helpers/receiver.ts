/**
 * A real HTTP receiver on 127.0.0.1 for tests: scriptable replies, full request records,
 * connection and concurrency counters.
 *
 *   const rx = await startReceiver();                       // answers 200 "ok" by default
 *   rx.setReply({ status: 503, headers: { "retry-after": "7" } });
 *   rx.enqueue({ hang: true }, { reset: true });            // next two requests, then the default
 *   rx.setReply((req) => ({ status: req.path === "/a" ? 200 : 404 }));
 *   await rx.waitForRequests(3);
 *   rx.requests[0].headers["x-continuum-signature"]; rx.requests[0].body;  // raw Buffer
 *   rx.connections; rx.maxInFlight;
 *   await rx.close();
 *
 * Loopback only: it binds 127.0.0.1 (or another 127/8 / ::1 host you pass) and nothing else.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ReceivedRequest {
  method: string;
  /** Path and query as sent on the request line. */
  path: string;
  /** Lower-case names, Node's merged view. */
  headers: IncomingHttpHeaders;
  /** Names and values as sent, alternating. */
  rawHeaders: string[];
  /** The raw body bytes. */
  body: Buffer;
  /** The body decoded as UTF-8. */
  text: string;
  /** 1-based id of the TCP connection the request arrived on. */
  connectionId: number;
  /** Date.now() when the whole body had arrived. */
  receivedAt: number;
}

export interface ReplySpec {
  /** Default 200. */
  status?: number;
  /** e.g. { "retry-after": "5" } or { location: "http://127.0.0.1:1234/" }. */
  headers?: Record<string, string>;
  /** Default "ok". */
  body?: string | Buffer;
  /** Send this many bytes of "x" as the body instead of `body`. */
  bodyBytes?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Never answer; the socket stays open until the client leaves or `close()`. */
  hang?: boolean;
  /** Send the head at once, then `chunk` every `intervalMs`, `count` times (default: until the client leaves). */
  drip?: { chunk: string; intervalMs: number; count?: number };
  /** Abort the TCP connection (RST) instead of answering. */
  reset?: boolean;
  /** Close the connection after this response (`Connection: close`). */
  closeConnection?: boolean;
}

export type Reply = ReplySpec | ((req: ReceivedRequest) => ReplySpec | Promise<ReplySpec>);

export interface Receiver {
  /** "http://127.0.0.1:PORT" (no trailing slash). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Every request whose body arrived, in arrival order. */
  readonly requests: readonly ReceivedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Requests currently being answered (or hanging). */
  readonly inFlight: number;
  /** Highest `inFlight` seen. */
  readonly maxInFlight: number;
  /** The reply for requests with no queued one. */
  setReply(reply: Reply): void;
  /** One-shot replies used, in order, by the next requests. */
  enqueue(...replies: Reply[]): void;
  /** Resolves once `count` requests have been recorded; rejects after `timeoutMs` (default 5 s). */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Forgets recorded requests and resets the counters (not the replies). */
  clear(): void;
  /** Stops listening and destroys every open connection, hanging ones included. */
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Default reply; `{ status: 200, body: "ok" }` when omitted. */
  reply?: Reply;
  /** Loopback host to bind. Default "127.0.0.1". */
  host?: string;
  /** Default 0 (an ephemeral port). */
  port?: number;
}

function isLoopback(host: string): boolean {
  return host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopback(host)) throw new Error(`the test receiver binds loopback only, not ${host}`);

  let reply: Reply = options.reply ?? { status: 200, body: "ok" };
  const queue: Reply[] = [];
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const connectionIds = new WeakMap<Socket, number>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  let connections = 0;
  let nextConnectionId = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const server = createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let counted = true;
    const done = () => {
      if (counted) {
        counted = false;
        inFlight--;
      }
    };
    res.on("close", done);

    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", done);
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const record: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
        text: body.toString("utf8"),
        connectionId: connectionIds.get(req.socket) ?? 0,
        receivedAt: Date.now(),
      };
      requests.push(record);
      for (const w of waiters) w();
      const next = queue.shift() ?? reply;
      Promise.resolve(typeof next === "function" ? next(record) : next).then(
        (spec) => answer(spec, res),
        () => answer({ status: 500, body: "receiver reply function threw" }, res),
      );
    });
  });

  function answer(spec: ReplySpec, res: ServerResponse): void {
    if (spec.hang) return;
    if (spec.delayMs !== undefined && spec.delayMs > 0) {
      const { delayMs: _ignored, ...rest } = spec;
      later(spec.delayMs, () => answer(rest, res));
      return;
    }
    if (res.destroyed) return;
    if (spec.reset) {
      res.socket?.resetAndDestroy();
      return;
    }
    const headers: Record<string, string> = { ...spec.headers };
    if (spec.closeConnection) headers.connection = "close";
    res.writeHead(spec.status ?? 200, headers);
    if (spec.drip) {
      const { chunk, intervalMs } = spec.drip;
      let left = spec.drip.count ?? Number.POSITIVE_INFINITY;
      res.flushHeaders();
      const tick = () => {
        if (res.destroyed) return;
        if (left <= 0) {
          res.end();
          return;
        }
        left--;
        res.write(chunk);
        later(intervalMs, tick);
      };
      tick();
      return;
    }
    const body = spec.bodyBytes !== undefined ? Buffer.alloc(spec.bodyBytes, "x") : (spec.body ?? "ok");
    res.end(body);
  }

  server.on("connection", (socket: Socket) => {
    connections++;
    connectionIds.set(socket, ++nextConnectionId);
    sockets.add(socket);
    // Clients that give up mid-response (body cap, timeouts) make writes fail; that is expected.
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("clientError", (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${urlHost}:${port}`,
    host,
    port,
    requests,
    get connections() {
      return connections;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    setReply(next) {
      reply = next;
    },
    enqueue(...replies) {
      queue.push(...replies);
    },
    waitForRequests(count, timeoutMs = 5_000) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (requests.length >= count) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver saw ${requests.length} of ${count} requests within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    clear() {
      requests.length = 0;
      connections = 0;
      maxInFlight = inFlight;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
