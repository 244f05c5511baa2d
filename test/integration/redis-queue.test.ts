/**
 * What only the Redis queue has to get right (the shared cases are in queue.test.ts): recovery
 * from the database when Redis lost something, dead workers' leases, fencing of stale claimers,
 * cross-process wake-ups, and staying up while Redis is away.
 */
import { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createEngine } from "../../src/engine.js";
import { newId } from "../../src/ids.js";
import { createLogger } from "../../src/logger.js";
import {
  createRedisQueue,
  type RedisDeliveryQueue,
  type RedisQueueOptions,
} from "../../src/queue/redis-queue.js";
import { openStore, type PostgresStore } from "../../src/store/index.js";
import { freePort } from "../helpers/cli.js";
import {
  deleteRedisKeys,
  type RedisServer,
  startRedisServer,
  uniquePrefix,
} from "../helpers/redis-server.js";
import { serviceMissing, TEST_REDIS_URL } from "../helpers/services.js";
import { postgresBackend } from "../helpers/stores.js";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const skip = postgresBackend.skip || serviceMissing("TEST_REDIS_URL");

describe.skipIf(skip)("redis queue", () => {
  let store: PostgresStore;
  let pool: pg.Pool;
  let cleanup: () => Promise<void>;
  let prefix: string;
  let url: string;
  let hookA: string;
  let hookB: string;
  const opened: RedisDeliveryQueue[] = [];
  const servers: RedisServer[] = [];

  const queue = (owner: string, o: Partial<RedisQueueOptions> = {}) => {
    const q = createRedisQueue({ url, store, owner, prefix, worker: false, ...o });
    opened.push(q);
    return q;
  };

  /** Commits `n` deliveries for `user` at `at`; hands them to `q` unless it is null (a lost enqueue). */
  async function emit(q: RedisDeliveryQueue | null, user: string, n: number, at: number): Promise<string[]> {
    const writes = await store.engine.emit(
      Array.from({ length: n }, (_, i) => ({
        eventId: newId("evt"),
        userId: user,
        event: "memory.created",
        body: JSON.stringify({ i }),
        priority: 1,
        priorityName: "normal",
        idempotencyKey: null,
        newDeliveryId: () => newId("dlv"),
      })),
      iso(at),
      iso(at - 86_400_000),
    );
    const entries = writes.flatMap((w) => w.entries);
    if (q) await q.enqueue(entries, at);
    return entries.map((e) => e.id);
  }

  // One schema for the file, emptied between tests: creating and dropping a schema per test
  // races with other files' migrations, which scan every schema of the database.
  beforeAll(async () => {
    const opened = await postgresBackend.open();
    if (opened.store.dialect !== "postgres") throw new Error("expected PostgreSQL");
    store = opened.store;
    cleanup = opened.cleanup;
    pool = store.pool;
  });
  afterAll(async () => {
    await cleanup?.();
  });

  beforeEach(async () => {
    await pool.query("TRUNCATE webhooks, webhook_events CASCADE");
    prefix = uniquePrefix();
    url = TEST_REDIS_URL ?? "";
    const hook = async (user: string) =>
      (
        await store.webhooks.insert({
          id: newId("whk"),
          userId: user,
          url: `https://${user}.example/`,
          secret: "s",
          events: ["*"],
          now: iso(T0),
        })
      ).id;
    hookA = await hook("u");
    hookB = await hook("v");
  });

  afterEach(async () => {
    for (const q of opened.splice(0)) await q.close();
    await deleteRedisKeys(TEST_REDIS_URL ?? "", prefix);
    for (const s of servers.splice(0)) await s.stop();
  });

  it("re-queues committed deliveries the queue never got, looking only at a narrow window once rebuilt", async () => {
    const a = queue("worker-a");
    const old = await emit(a, "u", 3, T0);
    const lost = await emit(null, "u", 2, T0 + 1000);
    // The first sweep of a fresh Redis rebuilds everything.
    expect(await a.reconcile(T0 + 100_000)).toEqual({ mode: "full", scanned: 5, added: 2 });
    const lostLater = await emit(null, "v", 4, T0 + 99_000);
    // Later sweeps only read rows that fell due since the last one: the old backlog is not rescanned.
    expect(await a.reconcile(T0 + 110_000)).toEqual({ mode: "window", scanned: 4, added: 4 });
    expect(await a.reconcile(T0 + 120_000)).toEqual({ mode: "window", scanned: 4, added: 0 });
    const gotA = await a.claim([{ webhookId: hookA, max: 10, limit: 10 }], T0 + 120_000, T0 + 180_000);
    expect(gotA.map((d) => d.id).sort()).toEqual([...old, ...lost].sort());
    const gotB = await a.claim([{ webhookId: hookB, max: 10, limit: 10 }], T0 + 120_000, T0 + 180_000);
    expect(gotB.map((d) => d.id).sort()).toEqual(lostLater.sort());
  });

  it("takes an emit of 60,000 deliveries in one enqueue", async () => {
    const a = queue("worker-a");
    const entries = Array.from({ length: 60_000 }, (_, i) => ({
      id: newId("dlv"),
      webhookId: i % 2 === 0 ? hookA : hookB,
      priority: 1,
    }));
    await a.enqueue(entries, T0);
    const raw = new Redis(url);
    try {
      expect(await raw.zcard(`{${prefix}}:w:${hookA}:d1`)).toBe(30_000);
      expect(await raw.zcard(`{${prefix}}:w:${hookB}:d1`)).toBe(30_000);
    } finally {
      raw.disconnect();
    }
  });

  it("lets one process sweep at a time", async () => {
    const a = queue("worker-a");
    const b = queue("worker-b");
    await emit(null, "u", 50, T0);
    const [x, y] = await Promise.all([a.reconcile(T0 + 10_000), b.reconcile(T0 + 10_000)]);
    expect([x.mode, y.mode].sort()).toEqual(["busy", "full"]);
    expect(x.added + y.added).toBe(50);
  });

  it("rebuilds leases from the rows after Redis lost its data, so the in-flight cap still holds", async () => {
    const a = queue("worker-a");
    const b = queue("worker-b");
    await emit(a, "u", 30, T0);
    const first = await a.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0, T0 + 60_000);
    expect(first).toHaveLength(8);
    await deleteRedisKeys(url, prefix); // a Redis restart without persistence
    expect(await b.readyWebhooks(T0 + 1)).toEqual([]);
    expect((await b.reconcile(T0 + 1000)).mode).toBe("full");
    const more = await b.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0 + 1000, T0 + 60_000);
    expect(more).toHaveLength(2);
    expect(more.some((d) => first.some((f) => f.id === d.id))).toBe(false);
    // worker-a still owns what it had: it can settle it, and the room comes back.
    await a.settle(first.map((d) => ({ entry: d, nextDueAt: null })));
    expect(await b.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0 + 2000, T0 + 60_000)).toHaveLength(8);
  });

  it("leaves rows leased in the database alone when Redis still holds its leases", async () => {
    const a = queue("worker-a");
    const b = queue("worker-b");
    await emit(a, "u", 6, T0);
    expect((await b.reconcile(T0)).mode).toBe("full"); // the first sweep of this Redis
    const first = await a.claim([{ webhookId: hookA, max: 3, limit: 10 }], T0, T0 + 60_000);
    // Settled in Redis a moment after a sweep read the rows as leased (the outcome is in flight).
    await a.settle(first.map((d) => ({ entry: d, nextDueAt: null })));
    const raw = new Redis(url);
    await raw.set(`{${prefix}}:dirty`, "1"); // some process lost an enqueue: sweep everything
    raw.disconnect();
    expect(await b.reconcile(T0 + 5000)).toEqual({ mode: "full", scanned: 6, added: 0 });
    // No stale lease was rebuilt from those rows: all three slots are free.
    expect(await b.claim([{ webhookId: hookA, max: 10, limit: 3 }], T0 + 5000, T0 + 60_000)).toHaveLength(3);
  });

  it("hands a dead worker's deliveries out once its heartbeat runs out, and ignores its late settle", async () => {
    const a = queue("worker-a", { ownerTtlMs: 15_000 });
    const b = queue("worker-b");
    const ids = await emit(a, "u", 5, T0);
    await a.heartbeat(T0);
    expect(await a.claim([{ webhookId: hookA, max: 5, limit: 10 }], T0, T0 + 600_000)).toHaveLength(5);
    expect(await b.readyWebhooks(T0 + 14_000)).toEqual([]);
    // No heartbeat since T0: at T0 + 15 s worker-a is dead, long before its leases would expire.
    expect(await b.readyWebhooks(T0 + 15_001)).toEqual([hookA]);
    const taken = await b.claim([{ webhookId: hookA, max: 5, limit: 5 }], T0 + 15_001, T0 + 60_000);
    expect(taken.map((d) => d.id).sort()).toEqual(ids.sort());
    // worker-a wakes up and settles: the leases are worker-b's now and stay so.
    await a.settle(taken.map((d) => ({ entry: d, nextDueAt: T0 + 16_000 })));
    await a.release(taken, T0 + 16_000);
    expect(await b.claim([{ webhookId: hookA, max: 5, limit: 5 }], T0 + 20_000, T0 + 60_000)).toHaveLength(0);
  });

  it("forgets deliveries finished elsewhere and keeps retries for when they are due", async () => {
    const a = queue("worker-a");
    const [done, later, due] = await emit(a, "u", 3, T0);
    await pool.query("UPDATE webhook_deliveries SET status = 'success', next_retry_at = NULL WHERE id = $1", [
      done,
    ]);
    await pool.query("UPDATE webhook_deliveries SET status = 'failed', next_retry_at = $2 WHERE id = $1", [
      later,
      iso(T0 + 50_000),
    ]);
    const now = await a.claim([{ webhookId: hookA, max: 10, limit: 10 }], T0 + 10, T0 + 60_000);
    expect(now.map((d) => d.id)).toEqual([due]);
    // `later` waits for its own time; `done` is gone for good.
    expect(await a.readyWebhooks(T0 + 49_999)).toEqual([]);
    expect(await a.readyWebhooks(T0 + 50_000)).toEqual([hookA]);
    await a.settle([{ entry: now[0]!, nextDueAt: null }]);
    const retry = await a.claim([{ webhookId: hookA, max: 10, limit: 10 }], T0 + 50_000, T0 + 90_000);
    expect(retry.map((d) => d.id)).toEqual([later]);
    await a.settle([{ entry: retry[0]!, nextDueAt: null }]);
    expect(await a.readyWebhooks(T0 + 10_000_000)).toEqual([]);
  });

  it("forgets webhooks that were deleted", async () => {
    const a = queue("worker-a");
    await emit(a, "u", 2, T0);
    await pool.query("DELETE FROM webhooks WHERE id = $1", [hookA]);
    expect(await a.readyWebhooks(T0)).toEqual([hookA]);
    await a.reconcile(T0 + 61_000);
    expect(await a.readyWebhooks(T0 + 61_000)).toEqual([]);
  });

  it("wakes worker processes through Redis, each once", async () => {
    const a = queue("api");
    const b = queue("worker-b", { worker: true, reconcileIntervalMs: 0 });
    const woken: string[] = [];
    b.onWake((ids) => woken.push(...ids));
    await b.ping(); // subscribed by the time its own connection answers
    await new Promise((r) => setTimeout(r, 200));
    await emit(a, "u", 2, Date.now());
    await emit(b, "v", 1, Date.now());
    const deadline = Date.now() + 3000;
    while (woken.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(woken.sort()).toEqual([hookA, hookB].sort());
  });

  it("keeps accepting emits while Redis is down and re-queues them when it returns", async () => {
    const server = await startRedisServer();
    servers.push(server);
    url = server.url;
    // A worker that only sweeps on reconnect (the interval is far away): the return alone must do it.
    const w = queue("worker-w", { worker: true, reconcileIntervalMs: 3_600_000 });
    const api = queue("api");
    const before = await emit(api, "u", 2, Date.now());
    await w.readyWebhooks(Date.now());
    await server.stop();
    const started = Date.now();
    const during = await emit(api, "u", 3, Date.now());
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(
      w.claim([{ webhookId: hookA, max: 10, limit: 10 }], Date.now(), Date.now() + 60_000),
    ).rejects.toThrow();
    await expect(w.readyWebhooks(Date.now())).rejects.toThrow();
    await expect(w.ping()).rejects.toThrow();
    expect(await w.depth()).toEqual({ high: 0, normal: 5, low: 0 });
    await server.start(); // empty
    const got: string[] = [];
    const deadline = Date.now() + 10_000;
    while (got.length < 5 && Date.now() < deadline) {
      const now = Date.now();
      const claimed = await w
        .claim([{ webhookId: hookA, max: 10, limit: 10 }], now, now + 60_000)
        .catch(() => []);
      got.push(...claimed.map((d) => d.id));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(got.sort()).toEqual([...before, ...during].sort());
  });

  it("starts without Redis: emits go through at once, and the work is queued once Redis appears", async () => {
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    const w = queue("worker-w", { worker: true, reconcileIntervalMs: 3_600_000 });
    const api = queue("api");
    await new Promise((r) => setTimeout(r, 300)); // the first connection attempts fail
    const started = Date.now();
    const ids = await emit(api, "u", 3, Date.now());
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(w.readyWebhooks(Date.now())).rejects.toThrow("Redis is unreachable");
    servers.push(await startRedisServer(port));
    const got: string[] = [];
    const deadline = Date.now() + 10_000;
    while (got.length < 3 && Date.now() < deadline) {
      const now = Date.now();
      // The worker's sweep runs from its first successful readyWebhooks, as in the worker's loop.
      await w.readyWebhooks(now).catch(() => []);
      const claimed = await w
        .claim([{ webhookId: hookA, max: 10, limit: 10 }], now, now + 60_000)
        .catch(() => []);
      got.push(...claimed.map((d) => d.id));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(got.sort()).toEqual(ids.sort());
  });

  it("refuses Redis with the embedded SQLite store, naming the variable", async () => {
    const sqlite = openStore({ sqlitePath: ":memory:" });
    try {
      expect(() =>
        createEngine({
          store: sqlite,
          config: loadConfig({ REDIS_URL: url }),
          logger: createLogger("silent"),
          workers: false,
        }),
      ).toThrow(/^REDIS_URL: /);
    } finally {
      await sqlite.close();
    }
  });
});
