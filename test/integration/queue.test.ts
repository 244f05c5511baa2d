/**
 * Queue conformance: every DeliveryQueue backend must pass these same cases (BullMQ's habit).
 * Time is passed explicitly, so leases and due times are tested without waiting.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/ids.js";
import { PRIORITY_NAMES } from "../../src/models.js";
import { createPgQueue } from "../../src/queue/pg-queue.js";
import type { DeliveryQueue } from "../../src/queue/queue.js";
import { createRedisQueue } from "../../src/queue/redis-queue.js";
import { createSqliteQueue } from "../../src/queue/sql-queue.js";
import type { EngineStatements, Outcome, Store } from "../../src/store/index.js";
import { deleteRedisKeys, uniquePrefix } from "../helpers/redis-server.js";
import { serviceMissing, TEST_REDIS_URL } from "../helpers/services.js";
import { type Backend, backends, postgresBackend } from "../helpers/stores.js";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const claim1 = (q: DeliveryQueue, webhookId: string, max: number, now: number, leaseUntil: number) =>
  q.claim([{ webhookId, max, limit: 1000 }], now, leaseUntil);

type QueueKind = "table" | "redis";
type QueueBackend = Backend & { queue: QueueKind; label: string };

const queueBackends: QueueBackend[] = [
  ...backends.map((b) => ({ ...b, queue: "table" as const, label: b.name })),
  // The distributed mode: PostgreSQL stays the store, Redis carries the queue.
  {
    ...postgresBackend,
    queue: "redis",
    label: "postgres + redis",
    skip: postgresBackend.skip || serviceMissing("TEST_REDIS_URL"),
  },
];

/** The Redis key prefix of the running test: both claimers share it, as processes of one deployment. */
let redisPrefix = "";

function queues(
  store: Store,
  owner: string,
  kind: QueueKind = "table",
): { queue: DeliveryQueue; engine: EngineStatements } {
  if (store.dialect === "sqlite") return { queue: createSqliteQueue(store, owner), engine: store.engine };
  const queue =
    kind === "redis"
      ? createRedisQueue({
          url: TEST_REDIS_URL ?? "",
          store,
          owner,
          prefix: redisPrefix,
          worker: false,
        })
      : createPgQueue(store, owner, { listen: false });
  return { queue, engine: store.engine };
}

for (const backend of queueBackends) {
  describe.skipIf(backend.skip)(`queue conformance: ${backend.label}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let a: { queue: DeliveryQueue; engine: EngineStatements };
    let b: { queue: DeliveryQueue; engine: EngineStatements };
    let hookA: string;
    let hookB: string;

    beforeEach(async () => {
      ({ store, cleanup } = await backend.open());
      if (backend.queue === "redis") redisPrefix = uniquePrefix();
      a = queues(store, "worker-a", backend.queue);
      b = queues(store, "worker-b", backend.queue);
      hookA = (
        await store.webhooks.insert({
          id: newId("whk"),
          userId: "u",
          url: "https://a.example/",
          secret: "s",
          events: ["*"],
          now: iso(T0),
        })
      ).id;
      hookB = (
        await store.webhooks.insert({
          id: newId("whk"),
          userId: "v",
          url: "https://b.example/",
          secret: "s",
          events: ["*"],
          now: iso(T0),
        })
      ).id;
    });
    afterEach(async () => {
      await a.queue.close();
      await b.queue.close();
      if (backend.queue === "redis") await deleteRedisKeys(TEST_REDIS_URL ?? "", redisPrefix);
      await cleanup();
    });

    /** Emits `n` events for `user` at time `at` with the given priority; returns the delivery ids. */
    async function emit(user: string, n: number, at: number, priority = 1): Promise<string[]> {
      const writes = await a.engine.emit(
        Array.from({ length: n }, (_, i) => ({
          eventId: newId("evt"),
          userId: user,
          event: "memory.created",
          body: JSON.stringify({ i }),
          priority,
          priorityName: PRIORITY_NAMES[priority]!,
          idempotencyKey: null,
          newDeliveryId: () => newId("dlv"),
        })),
        iso(at),
        iso(at - 86_400_000),
      );
      const entries = writes.flatMap((w) => w.entries);
      await a.queue.enqueue(entries, at);
      return entries.map((e) => e.id);
    }

    it("claims one webhook's due deliveries, highest priority first, up to the number asked", async () => {
      const normal = await emit("u", 3, T0, 1);
      const high = await emit("u", 2, T0 + 1, 0);
      await emit("v", 2, T0);
      const got = await claim1(a.queue, hookA, 4, T0 + 10, T0 + 60_000);
      expect(got.map((d) => d.id)).toEqual([...high, ...normal.slice(0, 2)]);
      expect(
        got.every((d) => d.webhookId === hookA && d.attempts === 0 && d.event === "memory.created"),
      ).toBe(true);
      expect(JSON.parse(got[0]!.payload!)).toEqual({ i: 0 });
    });

    it("claims for several webhooks in one call, each up to its own limit", async () => {
      await emit("u", 5, T0);
      await emit("v", 5, T0);
      const got = await a.queue.claim(
        [
          { webhookId: hookA, max: 2, limit: 10 },
          { webhookId: hookB, max: 4, limit: 10 },
        ],
        T0,
        T0 + 60_000,
      );
      expect(got.filter((d) => d.webhookId === hookA)).toHaveLength(2);
      expect(got.filter((d) => d.webhookId === hookB)).toHaveLength(4);
    });

    it("never lets a webhook have more than its limit in flight, whoever claims", async () => {
      await emit("u", 30, T0);
      const first = await a.queue.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0, T0 + 60_000);
      expect(first).toHaveLength(8);
      const more = await a.queue.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0, T0 + 60_000);
      expect(more).toHaveLength(2);
      expect(await a.queue.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0, T0 + 60_000)).toHaveLength(0);
      expect(
        await b.queue.claim([{ webhookId: hookA, max: 8, limit: 10 }], T0 + 1, T0 + 60_000),
      ).toHaveLength(0);
      // Settling frees room: a probe-sized limit of 1 then admits exactly one more.
      await a.queue.settle(first.map((d) => ({ entry: d, nextDueAt: null })));
      await a.engine.recordOutcomes({
        leaseOwner: "worker-a",
        requireEngineLock: true,
        outcomes: first.map((d) => ({
          deliveryId: d.id,
          webhookId: hookA,
          event: d.event,
          priority: 1,
          attempt: 1,
          attemptedAt: iso(T0 + 5),
          status: "success" as const,
          nextRetryAt: null,
          responseCode: 200,
          responseBody: null,
          durationMs: 1,
          completedAt: iso(T0 + 5),
          errorType: null,
          errorMessage: null,
          attempted: true,
        })),
        breakers: [],
        disabled: [],
      });
      expect(
        await a.queue.claim([{ webhookId: hookA, max: 8, limit: 3 }], T0 + 10, T0 + 60_000),
      ).toHaveLength(1);
    });

    it("hides claimed deliveries until the lease runs out, then hands them out again", async () => {
      await emit("u", 3, T0);
      expect(await claim1(a.queue, hookA, 3, T0, T0 + 30_000)).toHaveLength(3);
      expect(await claim1(b.queue, hookA, 3, T0 + 1000, T0 + 31_000)).toHaveLength(0);
      // worker-a died: its leases expire and another claimer takes the work over.
      expect(await claim1(b.queue, hookA, 3, T0 + 30_000, T0 + 60_000)).toHaveLength(3);
    });

    it("keeps extended leases hidden", async () => {
      const ids = await emit("u", 2, T0);
      await claim1(a.queue, hookA, 2, T0, T0 + 10_000);
      await a.queue.extend(ids, T0 + 50_000);
      expect(await claim1(b.queue, hookA, 2, T0 + 20_000, T0 + 80_000)).toHaveLength(0);
      expect(await claim1(b.queue, hookA, 2, T0 + 50_000, T0 + 80_000)).toHaveLength(2);
    });

    it("never gives the same delivery to two concurrent claimers", async () => {
      await emit("u", 200, T0);
      const [x, y] = await Promise.all([
        claim1(a.queue, hookA, 150, T0 + 1, T0 + 60_000),
        claim1(b.queue, hookA, 150, T0 + 1, T0 + 60_000),
      ]);
      const ids = [...x!, ...y!].map((d) => d.id);
      expect(new Set(ids).size).toBe(ids.length);
      // PostgreSQL shares the rows out; SQLite lets one process deliver from a file at a time.
      expect(ids.length).toBe(backend.name === "postgres" ? 200 : 150);
    });

    it("release gives deliveries back at a chosen time without spending an attempt", async () => {
      await emit("u", 2, T0);
      const got = await claim1(a.queue, hookA, 2, T0, T0 + 60_000);
      await a.queue.release(got, T0 + 5000);
      expect(await claim1(a.queue, hookA, 2, T0 + 4999, T0 + 60_000)).toHaveLength(0);
      const again = await claim1(a.queue, hookA, 2, T0 + 5000, T0 + 60_000);
      expect(again.map((d) => d.attempts)).toEqual([0, 0]);
    });

    it("does not claim finished deliveries; a scheduled retry falls due at its time", async () => {
      const [done, retry, dead] = await emit("u", 3, T0);
      const claimed = await claim1(a.queue, hookA, 3, T0, T0 + 60_000);
      expect(claimed).toHaveLength(3);
      const outcome = (id: string, status: Outcome["status"], nextRetryAt: string | null): Outcome => ({
        deliveryId: id,
        webhookId: hookA,
        event: "memory.created",
        priority: 1,
        attempt: 1,
        attemptedAt: iso(T0 + 10),
        status,
        nextRetryAt,
        responseCode: status === "success" ? 200 : 500,
        responseBody: null,
        durationMs: 5,
        completedAt: status === "failed" ? null : iso(T0 + 10),
        errorType: status === "success" ? null : "http_status",
        errorMessage: status === "success" ? null : "HTTP 500",
        attempted: true,
      });
      await a.engine.recordOutcomes({
        leaseOwner: "worker-a",
        requireEngineLock: true,
        outcomes: [
          outcome(done!, "success", null),
          outcome(retry!, "failed", iso(T0 + 1000)),
          outcome(dead!, "dead_letter", null),
        ],
        breakers: [],
        disabled: [],
      });
      await a.queue.settle([
        { entry: { id: done!, webhookId: hookA, priority: 1 }, nextDueAt: null },
        { entry: { id: retry!, webhookId: hookA, priority: 1 }, nextDueAt: T0 + 1000 },
        { entry: { id: dead!, webhookId: hookA, priority: 1 }, nextDueAt: null },
      ]);
      expect(await claim1(a.queue, hookA, 3, T0 + 999, T0 + 60_000)).toHaveLength(0);
      const due = await claim1(a.queue, hookA, 3, T0 + 1000, T0 + 60_000);
      expect(due.map((d) => [d.id, d.attempts])).toEqual([[retry, 1]]);
    });

    it("ignores an outcome from a claimer whose lease was taken over", async () => {
      const [id] = await emit("u", 1, T0);
      await claim1(a.queue, hookA, 1, T0, T0 + 1000);
      await claim1(b.queue, hookA, 1, T0 + 1000, T0 + 60_000);
      const applied = await a.engine.recordOutcomes({
        leaseOwner: "worker-a",
        requireEngineLock: true,
        outcomes: [
          {
            deliveryId: id!,
            webhookId: hookA,
            event: "memory.created",
            priority: 1,
            attempt: 1,
            attemptedAt: iso(T0 + 2000),
            status: "success",
            nextRetryAt: null,
            responseCode: 200,
            responseBody: null,
            durationMs: 1,
            completedAt: iso(T0 + 2000),
            errorType: null,
            errorMessage: null,
            attempted: true,
          },
        ],
        breakers: [],
        disabled: [],
      });
      expect(applied).toHaveLength(0);
      expect(await a.queue.depth()).toEqual({ high: 0, normal: 1, low: 0 });
    });

    it("lists the webhooks that have due work, and counts the backlog by priority", async () => {
      await emit("u", 2, T0, 0);
      await emit("u", 1, T0, 2);
      const later = await emit("v", 2, T0, 1);
      const claimed = await claim1(a.queue, hookB, 2, T0, T0 + 60_000);
      await a.queue.release(claimed, T0 + 10_000);
      expect((await a.queue.readyWebhooks(T0 + 1)).sort()).toEqual([hookA]);
      expect((await a.queue.readyWebhooks(T0 + 10_000)).sort()).toEqual([hookA, hookB].sort());
      expect(await a.queue.depth()).toEqual({ high: 2, normal: 2, low: 1 });
      expect(later).toHaveLength(2);
    });

    it("wakes listeners with the webhooks that got work", async () => {
      const woken: string[] = [];
      const off = a.queue.onWake((ids) => woken.push(...ids));
      await emit("u", 2, T0);
      await emit("v", 1, T0);
      off();
      await emit("v", 1, T0);
      expect(woken).toEqual([hookA, hookB]);
    });
  });
}
