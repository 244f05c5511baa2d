/**
 * One hot webhook, many deliveries waiting, two `worker` processes at their DEFAULT settings:
 * the webhook gets its whole allowance (WEBHOOK_ENDPOINT_CONCURRENCY, 10) in flight across the
 * fleet, and never more — on PostgreSQL + Redis and on PostgreSQL alone (CONTRACT §4).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createEngine, type Engine } from "../../src/engine.js";
import { createLogger } from "../../src/logger.js";
import { migrate, openStore, type Store } from "../../src/store/index.js";
import { freePort, type Served, startServe } from "../helpers/cli.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { type RedisServer, startRedisServer } from "../helpers/redis-server.js";
import { createPgSchema, serviceMissing } from "../helpers/services.js";

const LIMIT = 10; // WEBHOOK_ENDPOINT_CONCURRENCY's default
const EVENTS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const mode of ["postgres+redis", "postgres"] as const) {
  const skip =
    serviceMissing("TEST_DATABASE_URL") || (mode === "postgres+redis" && serviceMissing("TEST_REDIS_URL"));
  describe.skipIf(skip)(`a hot webhook across two default workers (${mode})`, () => {
    let schema: Awaited<ReturnType<typeof createPgSchema>>;
    let redis: RedisServer | undefined;
    let store: Store;
    let producer: Engine;
    let rx: Receiver;
    const workers: Served[] = [];

    beforeAll(async () => {
      schema = await createPgSchema();
      if (mode === "postgres+redis") redis = await startRedisServer();
      store = openStore({ databaseUrl: schema.url, pgPoolSize: 4 });
      await migrate(store);
      const env = { WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", ...(redis ? { REDIS_URL: redis.url } : {}) };
      producer = createEngine({
        store,
        config: loadConfig(env),
        logger: createLogger("silent"),
        workers: false,
      });
      // Slow enough that ten requests overlap; fast enough that no webhook counts as slow.
      rx = await startReceiver({ reply: { delayMs: 40 } });
      await producer.manager.create("alice", { url: `${rx.url}/hot`, events: ["*"] });
      for (let i = 0; i < 2; i++) {
        const metricsPort = await freePort();
        workers.push(
          await startServe(["worker", "--no-migrate", "--metrics-port", String(metricsPort)], {
            env: { ...env, DATABASE_URL: schema.url, LOG_LEVEL: "error" },
            healthPort: metricsPort,
          }),
        );
      }
    }, 60_000);

    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop("SIGKILL")));
      await producer?.close();
      await store?.close();
      await rx?.close();
      await redis?.stop();
      await schema?.drop();
    }, 30_000);

    it(`reaches ${LIMIT} requests in flight at its endpoint and never more`, async () => {
      for (let i = 0; i < EVENTS; i += 500) {
        await producer.emitter.emitBatch(
          Array.from({ length: 500 }, (_, j) => ({
            event: "memory.created" as const,
            userId: "alice",
            data: { n: i + j },
          })),
        );
      }
      const deadline = Date.now() + 120_000;
      while (rx.requests.length < EVENTS && Date.now() < deadline) await sleep(200);
      expect(rx.requests.length).toBe(EVENTS);
      expect(rx.maxInFlight).toBeLessThanOrEqual(LIMIT);
      expect(rx.maxInFlight).toBe(LIMIT);
    }, 180_000);
  });
}
