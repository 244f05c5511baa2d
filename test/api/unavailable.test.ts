/**
 * A request that fails because PostgreSQL went away answers 503 with Retry-After and a detail
 * that tells the producer how to retry safely (the same idempotency_key), never a bare 500: a
 * commit whose connection dropped may have landed, so "retry with the same key" is the only
 * answer that is right either way.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../../src/api/server.js";
import { loadConfig } from "../../src/config.js";
import { createEngine, type Engine } from "../../src/engine.js";
import { createLogger } from "../../src/logger.js";
import { createApiKey, migrate, openStore, type Store } from "../../src/store/index.js";
import { createPgSchema, serviceMissing } from "../helpers/services.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

describe.skipIf(serviceMissing("TEST_DATABASE_URL"))("the database going away under the API", () => {
  let schema: Awaited<ReturnType<typeof createPgSchema>>;
  let proxy: TcpProxy;
  let store: Store;
  let engine: Engine;
  let app: Awaited<ReturnType<typeof buildServer>>;
  let key: string;

  beforeAll(async () => {
    schema = await createPgSchema();
    const target = new URL(schema.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const url = new URL(schema.url);
    url.port = String(proxy.port);
    store = openStore({ databaseUrl: url.toString(), pgPoolSize: 2 });
    await migrate(store);
    ({ key } = await createApiKey(store, { userId: "alice", role: "user", now: new Date().toISOString() }));
    engine = createEngine({ store, config: loadConfig({}), logger: createLogger("silent"), workers: false });
    app = await buildServer({ store, engine, logger: createLogger("silent"), config: loadConfig({}) });
    await app.ready();
    // The key is cached once used: the emit below reaches the database only to write.
    const warm = await app.inject({
      method: "GET",
      url: "/api/v1/webhooks",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(warm.statusCode).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
    await engine?.close();
    await store?.close();
    await proxy?.close();
    await schema?.drop();
  });

  it("answers 503 with Retry-After and how to retry, and the retry with the same key lands once", async () => {
    await proxy.cut();
    const emit = () =>
      app.inject({
        method: "POST",
        url: "/api/v1/events",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        payload: { event: "sync.failed", data: { sync_id: "s1", error: "x" }, idempotency_key: "k-1" },
      });
    const down = await emit();
    expect(down.statusCode).toBe(503);
    expect(down.headers["content-type"]).toContain("application/problem+json");
    expect(down.headers["retry-after"]).toBe("1");
    expect(down.json().detail).toMatch(/retry it .*same idempotency_key/);

    await proxy.restore();
    const first = await emit();
    expect(first.statusCode).toBe(202);
    const again = await emit();
    expect(again.json().id).toBe(first.json().id);
  });
});
