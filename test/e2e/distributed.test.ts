/**
 * Distributed mode end to end, with real processes: one `serve --no-workers`, three `worker`
 * processes, PostgreSQL as the store and a private redis-server as the queue. Events are emitted
 * through the library from this process (into the same schema and Redis). Each webhook has its
 * own receiver, so `maxInFlight` is that webhook's concurrency as its endpoint saw it.
 *
 * The workers reach PostgreSQL through a TCP proxy, so the database can be cut from under them;
 * Redis is a child process, so it can be killed and started again empty.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createEngine, type Engine } from "../../src/engine.js";
import type { EventType } from "../../src/events.js";
import { createLogger } from "../../src/logger.js";
import { migrate, openStore, type Store } from "../../src/store/index.js";
import { freePort, type Served, startServe } from "../helpers/cli.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { type RedisServer, startRedisServer } from "../helpers/redis-server.js";
import { createPgSchema, serviceMissing, TEST_DATABASE_URL } from "../helpers/services.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

const skip = serviceMissing("TEST_DATABASE_URL") || serviceMissing("TEST_REDIS_URL");
/** One event type per webhook, so every event has exactly one delivery. */
const TYPES: EventType[] = ["memory.created", "memory.updated", "concept.discovered", "session.started"];
const LIMIT = 10; // WEBHOOK_ENDPOINT_CONCURRENCY's default: the cap under test
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)("distributed mode: API + 3 workers on PostgreSQL and Redis", () => {
  let schema: Awaited<ReturnType<typeof createPgSchema>>;
  let redis: RedisServer;
  let proxy: TcpProxy;
  let store: Store;
  let producer: Engine;
  let api: Served;
  const workers: Array<Served & { metricsPort: number }> = [];
  const receivers: Receiver[] = [];
  let workerEnv: Record<string, string>;

  const startWorker = async () => {
    const metricsPort = await freePort();
    const w = await startServe(["worker", "--no-migrate", "--metrics-port", String(metricsPort)], {
      env: workerEnv,
      healthPort: metricsPort,
    });
    const entry = Object.assign(w, { metricsPort });
    workers.push(entry);
    return entry;
  };

  /** Emits `n` events in batches, spread over the webhooks; returns the event ids per receiver. */
  async function emit(n: number, opts: { batch?: number; pauseMs?: number } = {}): Promise<Set<string>[]> {
    const ids = TYPES.map(() => new Set<string>());
    const batch = opts.batch ?? 500;
    for (let i = 0; i < n; i += batch) {
      const size = Math.min(batch, n - i);
      const events = Array.from({ length: size }, (_, j) => ({
        event: TYPES[(i + j) % TYPES.length]!,
        userId: "alice",
        data: { n: i + j },
      }));
      const results = await producer.emitter.emitBatch(events);
      results.forEach((r, j) => {
        expect(r.deliveries).toBe(1);
        ids[(i + j) % TYPES.length]!.add(r.id);
      });
      if (opts.pauseMs) await sleep(opts.pauseMs);
    }
    return ids;
  }

  /** Event ids each receiver got, parsed once per request (re-parsing 20k bodies per poll is slow). */
  const seenIds = new Map<Receiver, { parsed: number; ids: Set<string> }>();
  const delivered = (rx: Receiver): Set<string> => {
    let s = seenIds.get(rx);
    if (!s || s.parsed > rx.requests.length) {
      s = { parsed: 0, ids: new Set() };
      seenIds.set(rx, s);
    }
    for (; s.parsed < rx.requests.length; s.parsed++) {
      s.ids.add((JSON.parse(rx.requests[s.parsed]!.text) as { id: string }).id);
    }
    return s.ids;
  };

  /** Waits until every receiver has every expected event; fails with the counts otherwise. */
  /**
   * Every delivery recorded as a success. A receiver can hold a delivery a moment before its row
   * says so (the outcome is group-committed after the answer), or for longer when the worker that
   * sent it died before writing: the row then waits for the reaper and the redelivery records it.
   */
  async function expectAllFinished(timeoutMs = 40_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let left = await notFinished();
    while (left > 0 && Date.now() < deadline) {
      await sleep(200);
      left = await notFinished();
    }
    expect(left, "deliveries not recorded as delivered").toBe(0);
  }

  async function waitDelivered(expected: Set<string>[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const missing = () =>
      receivers.reduce((sum, rx, i) => {
        const got = delivered(rx);
        let m = 0;
        for (const id of expected[i]!) if (!got.has(id)) m++;
        return sum + m;
      }, 0);
    let left = missing();
    while (left > 0 && Date.now() < deadline) {
      await sleep(200);
      left = missing();
    }
    expect(left, "events not delivered in time").toBe(0);
  }

  async function notFinished(): Promise<number> {
    const c = new pg.Client({ connectionString: schema.url });
    await c.connect();
    try {
      const r = await c.query<{ n: string }>(
        "SELECT count(*) AS n FROM webhook_deliveries WHERE status <> 'success'",
      );
      return Number(r.rows[0]!.n);
    } finally {
      await c.end();
    }
  }

  const clearReceivers = () => {
    for (const rx of receivers) rx.clear();
    seenIds.clear();
  };
  const maxInFlight = () => Math.max(...receivers.map((rx) => rx.maxInFlight));
  const total = (sets: Set<string>[]) => sets.reduce((s, x) => s + x.size, 0);
  const requests = () => receivers.reduce((s, rx) => s + rx.requests.length, 0);

  beforeAll(async () => {
    schema = await createPgSchema();
    redis = await startRedisServer();
    const target = new URL(TEST_DATABASE_URL ?? "");
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(schema.url);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    store = openStore({ databaseUrl: schema.url, pgPoolSize: 8 });
    await migrate(store);
    const config = loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", REDIS_URL: redis.url });
    producer = createEngine({ store, config, logger: createLogger("silent"), workers: false });
    for (const type of TYPES) {
      const rx = await startReceiver({ reply: { delayMs: 5 } });
      receivers.push(rx);
      await producer.manager.create("alice", { url: `${rx.url}/${type}`, events: [type] });
    }
    const common = {
      REDIS_URL: redis.url,
      WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
      LOG_LEVEL: "error",
    };
    api = await startServe(["serve", "--no-workers", "--no-migrate"], {
      env: { ...common, DATABASE_URL: schema.url },
    });
    workerEnv = {
      ...common,
      DATABASE_URL: viaProxy.toString(),
      WEBHOOK_WORKERS: "40",
      WEBHOOK_TIMEOUT: "5s",
      WEBHOOK_DRAIN_TIMEOUT: "2s",
    };
    await Promise.all([startWorker(), startWorker(), startWorker()]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop("SIGKILL")));
    await api?.stop("SIGKILL");
    await producer?.close();
    await store?.close();
    await Promise.all(receivers.map((rx) => rx.close()));
    await redis?.stop();
    await proxy?.close();
    await schema?.drop();
  }, 30_000);

  it("delivers 20,000 events exactly once each, never more than 10 at a time per webhook", async () => {
    const expected = await emit(20_000);
    // Bounded generously: CI runs the suite's files side by side on two shared cores.
    await waitDelivered(expected, 150_000);
    expect(requests()).toBe(20_000); // no fault, no duplicate
    expect(maxInFlight()).toBeLessThanOrEqual(LIMIT);
    // The cap was really under pressure: three workers would have sent up to 30 each.
    expect(maxInFlight()).toBeGreaterThanOrEqual(LIMIT - 2);
    await expectAllFinished();
    const processed = await Promise.all(
      workers.map(async (w) => {
        const h = (await (await fetch(`http://127.0.0.1:${w.metricsPort}/health`)).json()) as {
          worker_stats: { processed: number };
        };
        return h.worker_stats.processed;
      }),
    );
    expect(processed.reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(processed.every((p) => p > 0)).toBe(true);
    // And the queue they shared was Redis: each worker heartbeats there.
    const probe = new Redis(redis.url);
    try {
      expect(await probe.hlen("{cw}:alive")).toBe(3);
    } finally {
      probe.disconnect();
    }
  }, 180_000);

  it("delivers everything at least once when two of the three workers are SIGKILLed mid-run", async () => {
    clearReceivers();
    for (const rx of receivers) rx.setReply({ delayMs: 20 });
    const expected = await emit(6000);
    const [first, second] = workers.splice(0, 2);
    await sleep(300);
    expect(await first!.stop("SIGKILL")).toBeNull();
    const seen = requests();
    expect(seen).toBeLessThan(6000);
    await sleep(500);
    expect(await second!.stop("SIGKILL")).toBeNull();
    // Their leases come back when their heartbeats run out (15 s), not when the leases would (65 s).
    await waitDelivered(expected, 120_000);
    await expectAllFinished();
    // Redelivered at most what the two dead workers had sent but not yet recorded: 40 in flight
    // each, plus one group-commit batch (at most 200) waiting to be written.
    expect(requests() - 6000).toBeLessThanOrEqual(2 * (40 + 200));
    expect(maxInFlight()).toBeLessThanOrEqual(LIMIT);
    for (const rx of receivers) rx.setReply({ delayMs: 5 });
    await Promise.all([startWorker(), startWorker()]);
  }, 180_000);

  it("keeps accepting emits while Redis is down for 10 s, and delivers everything once it is back empty", async () => {
    clearReceivers();
    const expected = TYPES.map(() => new Set<string>());
    const merge = (sets: Set<string>[]) => {
      for (const [i, set] of sets.entries()) for (const id of set) expected[i]!.add(id);
    };
    merge(await emit(1000));
    await redis.stop();
    const stoppedAt = Date.now();
    while (Date.now() - stoppedAt < 10_000) {
      const started = Date.now();
      merge(await emit(100));
      expect(Date.now() - started).toBeLessThan(2000); // an emit never waits for Redis
      await sleep(400);
    }
    const apiHealth = await fetch(`http://127.0.0.1:${api.port}/health`);
    expect(apiHealth.status).toBe(200); // the database answers: the API keeps serving
    expect(await apiHealth.json()).toMatchObject({
      status: "degraded",
      reasons: expect.arrayContaining(["redis_unreachable"]),
      redis: { ok: false },
    });
    await redis.start(); // no persistence: it comes back empty
    merge(await emit(1000));
    await waitDelivered(expected, 120_000);
    const back = (await (await fetch(`http://127.0.0.1:${api.port}/health`)).json()) as { redis: unknown };
    expect(back.redis).toEqual({ ok: true });
    await expectAllFinished();
    expect(maxInFlight()).toBeLessThanOrEqual(LIMIT);
    for (const w of workers) expect(w.child.exitCode).toBeNull();
    expect(total(expected)).toBeGreaterThan(3000);
  }, 180_000);

  it("rides out a few seconds without PostgreSQL: the workers back off and recover without a restart", async () => {
    clearReceivers();
    const pids = workers.map((w) => w.child.pid);
    const expected = await emit(2000);
    await proxy.cut();
    const during = await emit(2000); // the producer still reaches the database directly
    await sleep(4000);
    // Cut off, no worker could claim: nothing emitted since has gone out.
    expect(receivers.some((rx, i) => [...during[i]!].some((id) => delivered(rx).has(id)))).toBe(false);
    await proxy.restore();
    await waitDelivered(
      during.map((s, i) => new Set([...s, ...expected[i]!])),
      45_000,
    );
    await expectAllFinished();
    expect(maxInFlight()).toBeLessThanOrEqual(LIMIT);
    expect(workers.map((w) => w.child.pid)).toEqual(pids);
    for (const w of workers) expect(w.child.exitCode).toBeNull();
  }, 180_000);
});
