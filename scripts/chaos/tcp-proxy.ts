/**
 * Why this exists: the database faults of a campaign happen on the wire between the service
 * processes and PostgreSQL, without touching the shared server. A copy of test/helpers/tcp-proxy.ts
 * grown the modes a network really has:
 *
 * - pass: forward both ways;
 * - cut: reset every open connection and refuse new ones (the port is closed);
 * - delay: forward each chunk `ms` late, in order;
 * - stall: stop forwarding without a reset, holding the bytes; on restore they flow again (a
 *   partition that heals while TCP still retransmits);
 * - blackhole: stop forwarding without a reset and discard the bytes: every connection open during
 *   the blackhole (and every one accepted during it) is silently dead forever, as behind a
 *   firewall that lost its state; only connections made after restore work. Clients learn of it
 *   through their own timeouts or not at all.
 */
import { connect, createServer, type Server, Socket } from "node:net";

export type ProxyMode =
  | { kind: "pass" }
  | { kind: "cut" }
  | { kind: "delay"; ms: number }
  | { kind: "stall" }
  | { kind: "blackhole" };

export interface ChaosProxy {
  readonly port: number;
  readonly mode: ProxyMode;
  /** Open client connections (dead ones included). */
  readonly connections: number;
  set(mode: ProxyMode): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pipe {
  client: Socket;
  upstream: Socket;
  dead: boolean;
  /** Held chunks per direction, each with the time it may go. */
  queues: { up: Array<{ at: number; data: Buffer }>; down: Array<{ at: number; data: Buffer }> };
  timer: NodeJS.Timeout | undefined;
}

export async function startChaosProxy(targetHost: string, targetPort: number): Promise<ChaosProxy> {
  const pipes = new Set<Pipe>();
  let server: Server | undefined;
  let port = 0;
  let mode: ProxyMode = { kind: "pass" };

  const destroy = (p: Pipe) => {
    if (p.timer) clearTimeout(p.timer);
    p.client.destroy();
    p.upstream.destroy();
    pipes.delete(p);
  };

  const flush = (p: Pipe) => {
    if (p.timer) {
      clearTimeout(p.timer);
      p.timer = undefined;
    }
    if (p.dead) return;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [dir, to] of [
      ["up", p.upstream],
      ["down", p.client],
    ] as const) {
      const q = p.queues[dir];
      while (q.length > 0 && q[0]!.at <= now) {
        const chunk = q.shift()!;
        if (!to.destroyed) to.write(chunk.data);
      }
      if (q.length > 0) next = Math.min(next, q[0]!.at);
    }
    if (Number.isFinite(next)) p.timer = setTimeout(() => flush(p), Math.max(0, next - now));
  };

  const forward = (p: Pipe, dir: "up" | "down", data: Buffer) => {
    if (p.dead) return;
    const q = p.queues[dir];
    const last = q.length > 0 ? q[q.length - 1]!.at : 0;
    const at =
      mode.kind === "stall"
        ? Number.POSITIVE_INFINITY
        : Math.max(last, Date.now() + (mode.kind === "delay" ? mode.ms : 0));
    if (q.length === 0 && at <= Date.now()) {
      const to = dir === "up" ? p.upstream : p.client;
      if (!to.destroyed) to.write(data);
      return;
    }
    q.push({ at, data });
    if (Number.isFinite(at) && !p.timer) p.timer = setTimeout(() => flush(p), Math.max(0, at - Date.now()));
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((client) => {
        const dead = mode.kind === "blackhole";
        // A connection accepted into a blackhole never reaches the server at all.
        const upstream = dead ? new Socket() : connect(targetPort, targetHost);
        const p: Pipe = { client, upstream, dead, queues: { up: [], down: [] }, timer: undefined };
        pipes.add(p);
        const drop = () => destroy(p);
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", () => {
          if (!p.dead) drop();
        });
        client.on("data", (d: Buffer) => forward(p, "up", d));
        upstream.on("data", (d: Buffer) => forward(p, "down", d));
      });
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => {
        const addr = srv.address();
        if (typeof addr === "object" && addr) port = addr.port;
        server = srv;
        resolve();
      });
    });

  const closeListener = async () => {
    const srv = server;
    server = undefined;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  };

  const set = async (next: ProxyMode) => {
    const prev = mode;
    mode = next;
    if (next.kind === "cut") {
      for (const p of [...pipes]) {
        p.client.resetAndDestroy();
        destroy(p);
      }
      await closeListener();
      return;
    }
    if (!server) await listen();
    if (next.kind === "blackhole") {
      for (const p of pipes) {
        p.dead = true;
        p.queues.up.length = 0;
        p.queues.down.length = 0;
        if (p.timer) clearTimeout(p.timer);
      }
    }
    if (prev.kind === "stall" || prev.kind === "delay") {
      // Held bytes go now (stall) or at their time (delay: nothing new is held back further).
      for (const p of pipes) {
        for (const q of [p.queues.up, p.queues.down]) {
          for (const c of q) if (!Number.isFinite(c.at) || next.kind === "pass") c.at = Date.now();
        }
        flush(p);
      }
    }
  };

  await listen();
  return {
    get port() {
      return port;
    },
    get mode() {
      return mode;
    },
    get connections() {
      return pipes.size;
    },
    set,
    restore: () => set({ kind: "pass" }),
    async close() {
      mode = { kind: "cut" };
      for (const p of [...pipes]) destroy(p);
      await closeListener();
    },
  };
}
