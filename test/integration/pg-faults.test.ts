/**
 * Two faults found by probing the distributed mode by hand, each pinned here on PostgreSQL:
 *
 * - a worker that stalled past its lease (SIGSTOP, a long GC pause) and then wakes still holds
 *   an outcome for a delivery that another worker has meanwhile taken over and finished: its
 *   write must be refused, and must not move the webhook's breaker or counters either;
 * - connections that go silent (no RST, as after a host crash or a failover) must not freeze a
 *   worker: the statement times out, the connection is discarded, delivery resumes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createEngine, type Engine } from "../../src/engine.js";
import { newId } from "../../src/ids.js";
import { createLogger } from "../../src/logger.js";
import { createPgQueue } from "../../src/queue/pg-queue.js";
import { generateSecret } from "../../src/signer.js";
import { migrate, openStore, type PostgresStore } from "../../src/store/index.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { createPgSchema, serviceMissing } from "../helpers/services.js";
import { emitEntries, outcome } from "../helpers/stores.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

describe.skipIf(serviceMissing("TEST_DATABASE_URL"))("PostgreSQL faults", () => {
  let schema: Awaited<ReturnType<typeof createPgSchema>>;
  let store: PostgresStore;

  beforeAll(async () => {
    schema = await createPgSchema();
    const opened = openStore({ databaseUrl: schema.url, pgPoolSize: 4 });
    if (opened.dialect !== "postgres") throw new Error("expected PostgreSQL");
    store = opened;
    await migrate(store);
  });
  afterAll(async () => {
    await store?.close();
    await schema?.drop();
  });

  it("refuses a stalled claimer's outcome after another took the delivery over, breaker and counters included", async () => {
    const hook = await store.webhooks.insert({
      id: newId("whk"),
      userId: "stall",
      url: "https://example.com/stall",
      secret: "whsec_x",
      events: ["*"],
      now: iso(T0),
    });
    const [entry] = await emitEntries(store, { userId: "stall" }, { now: iso(T0) });
    const a = createPgQueue(store, "worker-a", { listen: false });
    const b = createPgQueue(store, "worker-b", { listen: false });
    try {
      const [claimedByA] = await a.claim([{ webhookId: hook.id, max: 1, limit: 10 }], T0, T0 + 1000);
      expect(claimedByA?.id).toBe(entry!.id);
      // A stalls; its lease runs out; B takes the delivery and succeeds.
      const [claimedByB] = await b.claim([{ webhookId: hook.id, max: 1, limit: 10 }], T0 + 2000, T0 + 60_000);
      expect(claimedByB?.id).toBe(entry!.id);
      const ok = outcome({ id: entry!.id, webhookId: hook.id }, { attemptedAt: iso(T0 + 2000) });
      expect(
        await store.engine.recordOutcomes({
          leaseOwner: "worker-b",
          requireEngineLock: false,
          outcomes: [ok],
          breakers: [],
          disabled: [],
        }),
      ).toHaveLength(1);

      // A wakes up and reports its own (timed-out) attempt, with the breaker it opened from it.
      const stale = outcome(
        { id: entry!.id, webhookId: hook.id },
        { status: "dead_letter", attemptedAt: iso(T0), errorType: "timeout", errorMessage: "timed out" },
      );
      const applied = await store.engine.recordOutcomes({
        leaseOwner: "worker-a",
        requireEngineLock: false,
        outcomes: [stale],
        breakers: [{ webhookId: hook.id, state: "open", openedAt: iso(T0 + 30_000) }],
        disabled: [{ webhookId: hook.id, reason: "endpoint answered 410 Gone", at: iso(T0 + 30_000) }],
      });
      expect(applied).toEqual([]);
      expect(await store.deliveries.get(entry!.id)).toMatchObject({ status: "success", attempts: 1 });
      expect((await store.deliveries.attempts(entry!.id)).map((x) => x.responseCode)).toEqual([200]);
      const after = await store.webhooks.get(hook.id);
      expect(after).toMatchObject({ breakerState: "closed", failureCount: 0, active: true });
    } finally {
      await a.close();
      await b.close();
    }
  });

  describe("connections that go silent", () => {
    let proxy: TcpProxy;
    let viaProxy: PostgresStore;
    let receiver: Receiver;
    let engine: Engine;

    beforeAll(async () => {
      const target = new URL(schema.url);
      proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
      const url = new URL(schema.url);
      url.port = String(proxy.port);
      const opened = openStore({ databaseUrl: url.toString(), pgPoolSize: 4, pgQueryTimeoutMs: 1000 });
      if (opened.dialect !== "postgres") throw new Error("expected PostgreSQL");
      viaProxy = opened;
      receiver = await startReceiver();
      engine = createEngine({
        store: viaProxy,
        config: loadConfig({
          WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
          WEBHOOK_TIMEOUT: "5s",
          WEBHOOK_DRAIN_TIMEOUT: "1s",
        }),
        logger: createLogger("silent"),
        workers: true,
        sweepIntervalMs: 100,
      });
    });
    afterAll(async () => {
      // Silent connections never finish closing: break them first.
      await proxy?.close();
      await engine?.close();
      await viaProxy?.close();
      await receiver?.close();
    });

    it("times a statement out instead of hanging, and delivers again without a restart", async () => {
      const hook = await store.webhooks.insert({
        id: newId("whk"),
        userId: "silent",
        url: `${receiver.url}/s`,
        secret: generateSecret(),
        events: ["*"],
        now: new Date().toISOString(),
      });
      const emitNow = () => emitEntries(store, { userId: "silent" }, { now: new Date().toISOString() });
      await emitNow();
      await receiver.waitForRequests(1, 10_000);

      proxy.silence();
      const started = Date.now();
      await expect(viaProxy.ping()).rejects.toThrow(/timeout/i);
      expect(Date.now() - started).toBeLessThan(5000);

      // Written by a producer that is not behind the proxy; the worker must find it on its own.
      for (let i = 0; i < 3; i++) await emitNow();
      await receiver.waitForRequests(4, 20_000);
      expect(receiver.requests.filter((r) => r.path === "/s")).toHaveLength(4);
      expect(hook.id).toMatch(/^whk_/);
    });
  });
});
