/** /health, /metrics, the rate limit and the API key cache. */
import { afterEach, describe, expect, it } from "vitest";
import { checkHealth, DEEP_QUEUE } from "../../src/api/health.js";
import type { Engine } from "../../src/engine.js";
import type { Store } from "../../src/store/index.js";
import type { WorkerHealth } from "../../src/worker/worker.js";
import { json, startApi, type TestApi } from "./helpers.js";

let api: TestApi | undefined;
afterEach(async () => {
  await api?.cleanup();
  api = undefined;
});

function fakeEngine(opts: {
  depth?: () => Promise<{ high: number; normal: number; low: number }>;
  worker?: Partial<WorkerHealth>;
}) {
  const worker = opts.worker
    ? {
        health: (): WorkerHealth => ({
          running: true,
          workers: 4,
          capacity: 200,
          in_flight: 0,
          last_error: null,
          stats: { processed: 9, successful: 8, failed: 1 },
          ...opts.worker,
        }),
      }
    : null;
  return {
    queue: { depth: opts.depth ?? (async () => ({ high: 0, normal: 0, low: 0 })) },
    worker,
  } as unknown as Pick<Engine, "queue" | "worker">;
}

describe("GET /health", () => {
  it("reports healthy with the CONTRACT §7 fields", async () => {
    api = await startApi({ workers: true });
    const res = await api.app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(200);
    expect(json(res)).toEqual({
      status: "healthy",
      running: true,
      workers: 10,
      workers_alive: 1,
      queue_depth: { high: 0, normal: 0, low: 0 },
      worker_stats: { processed: 0, successful: 0, failed: 0 },
      reasons: [],
      database: { ok: true, dialect: "sqlite", latency_ms: expect.any(Number) },
      redis: null,
    });
  });

  it("is unhealthy (503) when the database does not answer, without describing why", async () => {
    const base = await startApi();
    const broken: Store = {
      ...base.store,
      ping: async () => Promise.reject(new Error("SQLITE_CANTOPEN /secret/path.db")),
    };
    await base.cleanup();
    api = await startApi({ store: broken });
    const res = await api.app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(503);
    expect(json(res)).toMatchObject({
      status: "unhealthy",
      reasons: ["database_unreachable"],
      database: { ok: false, dialect: "sqlite", error: "unreachable" },
    });
    expect(res.body).not.toContain("/secret/path.db");
    expect(api.logs.join("\n")).toContain("SQLITE_CANTOPEN");
  });

  it("is unhealthy when the ping hangs past 2 s", async () => {
    const base = await startApi();
    const hung = { ...base.store, ping: () => new Promise<void>(() => {}) } as Store;
    const report = await checkHealth({ store: hung });
    await base.cleanup();
    expect(report).toMatchObject({
      status: "unhealthy",
      database: { ok: false, error: "no answer within 2000 ms" },
    });
  });

  it("is degraded when the queue is deeper than the critical alert threshold", async () => {
    api = await startApi();
    // A process that delivers itself: the no-live-worker rule is for API-only processes.
    const deep = fakeEngine({ worker: {}, depth: async () => ({ high: 1, normal: DEEP_QUEUE, low: 0 }) });
    expect(await checkHealth({ store: api.store, engine: deep })).toMatchObject({
      status: "degraded",
      reasons: ["queue_deep"],
      queue_depth: { high: 1, normal: DEEP_QUEUE, low: 0 },
    });
    const atThreshold = fakeEngine({
      worker: {},
      depth: async () => ({ high: 0, normal: DEEP_QUEUE, low: 0 }),
    });
    expect((await checkHealth({ store: api.store, engine: atThreshold })).status).toBe("healthy");
  });

  it("is degraded while the worker reports an error or is stopped, or the depth cannot be read", async () => {
    api = await startApi();
    const failing = fakeEngine({ worker: { last_error: "sweep failed: disk I/O error" } });
    const report = await checkHealth({ store: api.store, engine: failing });
    expect(report).toMatchObject({
      status: "degraded",
      reasons: ["worker_error"],
      workers: 4,
      running: true,
    });
    expect(JSON.stringify(report)).not.toContain("disk I/O");
    const stopped = fakeEngine({ worker: { running: false } });
    expect(await checkHealth({ store: api.store, engine: stopped })).toMatchObject({
      status: "degraded",
      running: false,
      reasons: ["workers_stopped"],
      worker_stats: { processed: 9, successful: 8, failed: 1 },
    });
    const blind = fakeEngine({ depth: () => Promise.reject(new Error("locked")) });
    expect(await checkHealth({ store: api.store, engine: blind })).toMatchObject({
      status: "degraded",
      queue_depth: null,
      reasons: ["queue_depth_unavailable"],
    });
  });

  it("needs no key and is not rate-limited", async () => {
    api = await startApi({ rateLimit: { max: 1, timeWindowMs: 60_000 } });
    for (let i = 0; i < 3; i++)
      expect((await api.app.inject({ method: "GET", url: "/health" })).statusCode).toBe(200);
  });
});

describe("GET /metrics", () => {
  it("serves the Prometheus text format with the contract's metric names", async () => {
    api = await startApi();
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: { url: "http://127.0.0.1:8080/m", events: ["*"] },
    });
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "sync.failed", data: {} },
    });
    const res = await api.app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toMatch(/^webhook_queue_depth\{priority="high"\} 1$/m);
    expect(res.body).toMatch(/^webhook_queue_enqueued_total(\{[^}]*\})? 1$/m);
    for (const name of [
      "webhook_deliveries_total",
      "webhook_delivery_duration_seconds",
      "webhook_circuit_breaker_opened_total",
    ]) {
      expect(res.body).toContain(`# TYPE ${name}`);
    }
  });
});

describe("rate limit", () => {
  it("answers 429 problem+json with Retry-After once a key spends its budget, per key", async () => {
    api = await startApi({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    for (let i = 0; i < 3; i++) {
      const ok = await api.call(api.keys.alice, { method: "GET", url: "/api/v1/webhooks" });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers["x-ratelimit-remaining"]).toBe(String(2 - i));
    }
    const limited = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "memory.created", data: {} },
    });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(json(limited)).toMatchObject({
      type: "https://continuum-webhooks.dev/problems/rate_limited",
      status: 429,
    });
    expect((await api.counts()).events).toBe(0);
    // Another key has its own budget.
    expect((await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks" })).statusCode).toBe(200);
  });

  it("does not spend a key's budget on requests without a valid key", async () => {
    api = await startApi({ rateLimit: { max: 2, timeWindowMs: 60_000 } });
    for (let i = 0; i < 5; i++) {
      expect((await api.call("cwk_bogus", { method: "GET", url: "/api/v1/webhooks" })).statusCode).toBe(401);
    }
    expect((await api.call(api.keys.alice, { method: "GET", url: "/api/v1/webhooks" })).statusCode).toBe(200);
  });
});

describe("API key cache", () => {
  it("keeps a revoked key working for at most the cache TTL, then refuses it", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    api = await startApi({ auth: { cacheTtlMs: 5000, now: () => now } });
    const get = () => api!.call(api!.keys.alice, { method: "GET", url: "/api/v1/webhooks" });
    expect((await get()).statusCode).toBe(200);
    const key = await api.store.db
      .selectFrom("api_keys")
      .select("id")
      .where("user_id", "=", "alice")
      .executeTakeFirstOrThrow();
    expect(await api.store.apiKeys.revoke(key.id, new Date(now).toISOString())).toBe(true);
    now += 4000;
    expect((await get()).statusCode).toBe(200);
    now += 1001;
    const refused = await get();
    expect(refused.statusCode).toBe(401);
    expect(refused.headers["www-authenticate"]).toContain('error="invalid_token"');
  });

  it("records last_used_at at most once a minute per key", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    api = await startApi({ auth: { now: () => now } });
    const lastUsed = async () =>
      (
        await api!.store.db
          .selectFrom("api_keys")
          .select("last_used_at")
          .where("user_id", "=", "bob")
          .executeTakeFirstOrThrow()
      ).last_used_at;
    const settle = () => new Promise((r) => setTimeout(r, 20));
    expect(await lastUsed()).toBeNull();
    await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks" });
    await settle();
    expect(await lastUsed()).toBe("2030-01-01T00:00:00.000Z");
    now += 59_000;
    await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks" });
    await settle();
    expect(await lastUsed()).toBe("2030-01-01T00:00:00.000Z");
    now += 1_000;
    await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks" });
    await settle();
    expect(await lastUsed()).toBe("2030-01-01T00:01:00.000Z");
  });
});
