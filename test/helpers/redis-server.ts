/**
 * Redis for tests. The shared server (TEST_REDIS_URL) is used under a unique key prefix per test,
 * and only that prefix is ever deleted. Tests that stop or restart Redis start their own
 * `redis-server` on a free loopback port, without persistence, so a restart comes back EMPTY.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { freePort } from "./cli.js";

export function uniquePrefix(): string {
  return `cwtest-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Deletes every key of a queue prefix (the keys are named `{prefix}:…`). */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", `{${prefix}}:*`, "COUNT", 1000);
      cursor = next;
      if (found.length > 0) await redis.del(...found);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly running: boolean;
  /** The server process's pid while it runs. */
  readonly pid: number | undefined;
  /** Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port; it comes back with no data. */
  start(): Promise<void>;
}

async function waitForPing(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output()}`);
    const probe = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server not ready on ${port}: ${output()}`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
}

/** A private redis-server on 127.0.0.1 (on `port`, or a free one); call `stop()` when done. */
export async function startRedisServer(port?: number): Promise<RedisServer> {
  port ??= await freePort();
  let child: ChildProcess | undefined;
  let out = "";
  const launch = async () => {
    out = "";
    const c = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    c.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    c.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child = c;
    await waitForPing(port, c, () => out);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await exited;
    },
    start: launch,
  };
}
