/**
 * Storage conformance: the same cases on every backend (River's habit). A backend passes only if
 * every case passes, so SQLite and PostgreSQL cannot drift apart. State is written only through
 * the Store interface production uses; `store.db` is read for assertions where the interface has
 * no read. The backend-specific queue statements are in store-queue.test.ts.
 */
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/ids.js";
import type { WebhookRecord } from "../../src/models.js";
import { canonicalJson } from "../../src/signer.js";
import {
  createApiKey,
  type DeliveryFilter,
  DuplicateWebhookError,
  findApiKey,
  hashApiKey,
  migrate,
  type Store,
  type WebhookPatch,
} from "../../src/store/index.js";
import {
  addWebhook,
  at,
  backends,
  countRows,
  DAY,
  emit,
  emitEntries,
  emitRow,
  NOW,
  outcome,
  record,
  retrying,
  SECOND,
} from "../helpers/stores.js";

const HOUR = 3_600_000;
const sorted = (xs: string[]) => [...xs].sort();
/** `n` events for alice. */
const alice = (n: number) => Array.from({ length: n }, () => ({ userId: "alice" }));
const byStatus = (pending: number, success: number, failed: number, dead_letter: number) => ({
  pending,
  success,
  failed,
  dead_letter,
});
const NO_DURATIONS = { n: 0, avg: null, p50: null, p95: null };

for (const backend of backends) {
  describe.skipIf(backend.skip)(`store conformance: ${backend.name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let peer: () => Promise<Store>;

    beforeEach(async () => {
      ({ store, cleanup, peer } = await backend.open());
    });
    afterEach(async () => {
      await cleanup();
    });

    /** The one delivery an emit of `event` for `userId` created. */
    const deliver = async (userId: string, opts: { now?: string; event?: string } = {}) => {
      const entries = await emitEntries(store, { userId, event: opts.event ?? "memory.created" }, opts);
      expect(entries).toHaveLength(1);
      return entries[0]!;
    };
    const lastLeaseOwner = async (id: string) =>
      (
        await store.db
          .selectFrom("webhook_deliveries")
          .select("lease_owner")
          .where("id", "=", id)
          .executeTakeFirstOrThrow()
      ).lease_owner;

    describe("schema", () => {
      it("migrates idempotently and creates every named table and index", async () => {
        const again = await migrate(store);
        expect(again.applied).toEqual([]);
        expect((await migrate(await peer())).applied).toEqual([]);
        const recorded = (
          await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db)
        ).rows;
        expect(recorded.length).toBe(again.total);
        expect(recorded[0]?.name).toBe("001_initial");
        const names =
          store.dialect === "sqlite"
            ? sql<{ name: string }>`select name from sqlite_master`
            : sql<{
                name: string;
              }>`select tablename as name from pg_tables where schemaname = current_schema()
                union all select indexname from pg_indexes where schemaname = current_schema()`;
        const expected = [
          "webhooks",
          "webhook_events",
          "webhook_deliveries",
          "webhook_delivery_attempts",
          "api_keys",
          "idx_webhooks_user_id",
          "idx_webhooks_user_active",
          "idx_events_idempotency",
          "idx_events_created_at",
          "idx_deliveries_webhook_id",
          "idx_deliveries_status",
          "idx_deliveries_next_retry",
          "idx_deliveries_created_at",
          "idx_attempts_webhook_time",
          store.dialect === "sqlite" ? "engine_lock" : "idx_deliveries_leased",
        ];
        expect((await names.execute(store.db)).rows.map((r) => r.name)).toEqual(
          expect.arrayContaining(expected),
        );
      });
    });

    describe("webhooks", () => {
      it("creates, reads and round-trips every field, with JSON parsed and active a boolean", async () => {
        const created = await store.webhooks.insert({
          id: newId("whk"),
          userId: "u1",
          url: "https://example.com/hook",
          secret: "whsec_abc",
          events: ["memory.created", "sync.failed"],
          name: "Main",
          description: "desc ✓",
          metadata: { team: "ünïcode 😀", n: 1.5, nested: { a: [1, 2] } },
          retrySchedule: [1000, 60000],
          now: NOW,
        });
        expect(created).toEqual({
          id: created.id,
          userId: "u1",
          url: "https://example.com/hook",
          secret: "whsec_abc",
          events: ["memory.created", "sync.failed"],
          active: true,
          name: "Main",
          description: "desc ✓",
          metadata: { team: "ünïcode 😀", n: 1.5, nested: { a: [1, 2] } },
          retrySchedule: [1000, 60000],
          createdAt: NOW,
          updatedAt: NOW,
          failureCount: 0,
          lastTriggeredAt: null,
          lastSuccessAt: null,
          lastFailureAt: null,
          previousSecret: null,
          previousSecretExpiresAt: null,
          breakerState: "closed",
          breakerOpenedAt: null,
          disabledReason: null,
        } satisfies WebhookRecord);
        expect(await store.webhooks.get(created.id)).toEqual(created);
        expect(await store.engine.webhookForDispatch(created.id)).toEqual(created);

        const off = await addWebhook(store, "u1", "https://example.com/off", { active: false });
        expect(off.active).toBe(false);
        expect((await store.webhooks.get(off.id))?.active).toBe(false);
        expect(off).toMatchObject({ name: null, description: null, metadata: null, retrySchedule: null });
      });

      it("refuses a second webhook for the same user and URL, on insert and on update", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        await expect(addWebhook(store, "alice", "https://example.com/a")).rejects.toBeInstanceOf(
          DuplicateWebhookError,
        );
        const bobs = await addWebhook(store, "bob", "https://example.com/a");
        expect(bobs.url).toBe("https://example.com/a");
        const other = await addWebhook(store, "alice", "https://example.com/b");
        await expect(
          store.webhooks.update(other.id, "alice", { url: "https://example.com/a" }, NOW),
        ).rejects.toBeInstanceOf(DuplicateWebhookError);
        expect((await store.webhooks.get(other.id))?.url).toBe("https://example.com/b");
        expect((await store.webhooks.list("alice", { limit: 10 })).length).toBe(2);
      });

      it("scopes reads, updates and deletes to the owning user", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        expect(await store.webhooks.get(w.id, "bob")).toBeNull();
        expect(await store.webhooks.update(w.id, "bob", { name: "x" }, at(SECOND))).toBeNull();
        expect(await store.webhooks.delete(w.id, "bob")).toBe(false);
        expect(await store.webhooks.get(w.id, "alice")).toEqual(w);
        expect(await store.webhooks.update(newId("whk"), undefined, { name: "x" }, NOW)).toBeNull();
        expect(await store.webhooks.delete(w.id, "alice")).toBe(true);
        expect(await store.webhooks.delete(w.id, "alice")).toBe(false);
        expect(await store.webhooks.get(w.id)).toBeNull();
      });

      it("pages through one user's webhooks, and through everyone's, without gaps or repeats", async () => {
        const alices: string[] = [];
        const all: string[] = [];
        for (let i = 0; i < 7; i++) {
          const w = await addWebhook(store, i % 3 === 2 ? "bob" : "alice", `https://example.com/${i}`);
          all.push(w.id);
          if (w.userId === "alice") alices.push(w.id);
        }
        const pageAll = async (userId: string | undefined) => {
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await store.webhooks.list(userId, { limit: 2, after });
            seen.push(...page.map((w) => w.id));
            if (page.length < 2) return seen;
            after = page[page.length - 1]!.id;
          }
        };
        expect(await pageAll("alice")).toEqual(alices);
        expect(await pageAll(undefined)).toEqual(all);
        expect(await pageAll("carol")).toEqual([]);
      });

      it("updates each patch field on its own, leaving every other field as it was", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a", {
          name: "n",
          description: "d",
          metadata: { a: 1 },
          retrySchedule: [1000],
        });
        const patches: WebhookPatch[] = [
          {},
          { url: "https://example.com/b" },
          { events: ["sync.failed", "*"] },
          { name: "Renamed ✓" },
          { name: null },
          { description: "new" },
          { description: null },
          { metadata: { team: "ünï 😀", nested: { a: [1, 2] }, ok: true } },
          { metadata: null },
          { retrySchedule: [5000, 60000, 3_600_000] },
          { retrySchedule: null },
          { secret: "whsec_new" },
          { previousSecret: "whsec_old", previousSecretExpiresAt: at(DAY) },
          { previousSecret: null, previousSecretExpiresAt: null },
          { disabledReason: "manual" },
          { active: false },
        ];
        let prev = w;
        for (const [i, patch] of patches.entries()) {
          const now = at((i + 1) * SECOND);
          const updated = await store.webhooks.update(w.id, i % 2 ? "alice" : undefined, patch, now);
          expect(updated, JSON.stringify(patch)).toEqual({ ...prev, ...patch, updatedAt: now });
          expect(await store.webhooks.get(w.id)).toEqual(updated);
          prev = updated!;
        }
        expect(prev.active).toBe(false);
      });

      it("enabling a webhook clears the reason it was disabled", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        await record(store, [], {
          disabled: [{ webhookId: w.id, reason: "endpoint answered 410 Gone", at: at(HOUR) }],
        });
        expect(await store.webhooks.get(w.id)).toMatchObject({
          active: false,
          disabledReason: "endpoint answered 410 Gone",
          updatedAt: at(HOUR),
        });
        const renamed = await store.webhooks.update(w.id, "alice", { name: "still off" }, at(2 * HOUR));
        expect(renamed).toMatchObject({ active: false, disabledReason: "endpoint answered 410 Gone" });
        const enabled = await store.webhooks.update(w.id, "alice", { active: true }, at(3 * HOUR));
        expect(enabled).toMatchObject({ active: true, disabledReason: null, updatedAt: at(3 * HOUR) });
        expect(await store.webhooks.get(w.id)).toEqual(enabled);
      });

      it("deletes a webhook with its deliveries and their attempts, and nothing of another's", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const v = await addWebhook(store, "alice", "https://example.com/b");
        const entries = await emitEntries(store, alice(2));
        expect(entries).toHaveLength(4);
        await record(
          store,
          entries.map((e) => outcome(e)),
        );
        expect(await countRows(store, "webhook_delivery_attempts")).toBe(4);

        expect(await store.webhooks.delete(w.id, "alice")).toBe(true);
        for (const e of entries) {
          const gone = e.webhookId === w.id;
          expect((await store.deliveries.get(e.id)) === null).toBe(gone);
          expect((await store.deliveries.attempts(e.id)).length).toBe(gone ? 0 : 1);
        }
        expect(await countRows(store, "webhook_deliveries")).toBe(2);
        expect(await countRows(store, "webhook_delivery_attempts")).toBe(2);
        expect((await store.deliveries.list(v.id, {}, { limit: 10 })).length).toBe(2);
      });
    });

    describe("engine.emit", () => {
      it("creates one delivery per active webhook of that user subscribed to the event or to *", async () => {
        const a = await addWebhook(store, "alice", "https://example.com/a", { events: ["memory.created"] });
        const b = await addWebhook(store, "alice", "https://example.com/b", { events: ["*"] });
        const c = await addWebhook(store, "alice", "https://example.com/c", { events: ["sync.failed"] });
        await addWebhook(store, "alice", "https://example.com/d", {
          events: ["memory.created"],
          active: false,
        });
        await addWebhook(store, "bob", "https://example.com/e", { events: ["*"] });

        const row = emitRow({ userId: "alice", priority: "high" }, NOW);
        const [w] = await store.engine.emit([row], NOW, at(-DAY));
        expect(w).toMatchObject({ id: row.eventId, deliveries: 2, duplicate: false });
        expect(sorted(w!.entries.map((e) => e.webhookId))).toEqual(sorted([a.id, b.id]));
        for (const e of w!.entries) {
          expect(e.priority).toBe(0);
          expect(await store.deliveries.get(e.id)).toEqual({
            id: e.id,
            webhookId: e.webhookId,
            eventId: row.eventId,
            event: "memory.created",
            payload: row.body,
            status: "pending",
            priority: 0,
            attempts: 0,
            nextRetryAt: NOW,
            responseCode: null,
            responseBody: null,
            durationMs: 0,
            createdAt: NOW,
            completedAt: null,
            errorMessage: null,
          });
        }
        const event = await store.db
          .selectFrom("webhook_events")
          .select(["user_id", "event", "priority", "delivery_count", "created_at"])
          .where("id", "=", row.eventId)
          .executeTakeFirst();
        expect(event).toEqual({
          user_id: "alice",
          event: "memory.created",
          priority: "high",
          delivery_count: 2,
          created_at: NOW,
        });

        const [s] = await emit(store, { userId: "alice", event: "sync.failed" });
        expect(sorted(s!.entries.map((e) => e.webhookId))).toEqual(sorted([b.id, c.id]));
        const [none] = await emit(store, { userId: "carol" });
        expect(none).toMatchObject({ deliveries: 0, duplicate: false, entries: [] });
        expect(await countRows(store, "webhook_deliveries")).toBe(4);
        expect(await countRows(store, "webhook_events")).toBe(3);
      });

      it("writes a batch for several users at once, each event reaching only its user's webhooks", async () => {
        const a = await addWebhook(store, "alice", "https://example.com/a", { events: ["*"] });
        const b = await addWebhook(store, "bob", "https://example.com/b", { events: ["memory.created"] });
        const rows = [
          emitRow({ userId: "alice" }, NOW),
          emitRow({ userId: "bob", priority: "low" }, NOW),
          emitRow({ userId: "alice", event: "sync.failed" }, NOW),
          emitRow({ userId: "bob", event: "sync.failed" }, NOW),
        ];
        const writes = await store.engine.emit(rows, NOW, at(-DAY));
        expect(writes.map((w) => [w.id, w.deliveries, w.duplicate])).toEqual([
          [rows[0]!.eventId, 1, false],
          [rows[1]!.eventId, 1, false],
          [rows[2]!.eventId, 1, false],
          [rows[3]!.eventId, 0, false],
        ]);
        expect(writes.map((w) => w.entries.map((e) => [e.webhookId, e.priority]))).toEqual([
          [[a.id, 1]],
          [[b.id, 2]],
          [[a.id, 1]],
          [],
        ]);
        for (const [i, w] of writes.entries()) {
          for (const e of w.entries) {
            expect(await store.deliveries.get(e.id, e.webhookId)).toMatchObject({
              eventId: rows[i]!.eventId,
              event: rows[i]!.event,
              payload: rows[i]!.body,
              priority: e.priority,
            });
          }
        }
        expect(await countRows(store, "webhook_deliveries")).toBe(3);
      });

      it("answers a repeated idempotency key within the window with the first event, writing nothing", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        await addWebhook(store, "bob", "https://example.com/b");
        const [first] = await emit(store, { userId: "alice", key: "k1" });
        expect(first).toMatchObject({ deliveries: 1, duplicate: false });
        const [again] = await emit(store, { userId: "alice", key: "k1" }, { now: at(23 * HOUR) });
        expect(again).toEqual({ id: first!.id, deliveries: 1, duplicate: true, entries: [] });
        expect(await countRows(store, "webhook_events")).toBe(1);
        expect(await countRows(store, "webhook_deliveries")).toBe(1);

        const [bobs] = await emit(store, { userId: "bob", key: "k1" });
        expect(bobs).toMatchObject({ deliveries: 1, duplicate: false });
        expect(bobs!.id).not.toBe(first!.id);

        // The same key twice in one batch: the second answers with the first.
        const batch = await emit(store, [
          { userId: "alice", key: "k2" },
          { userId: "alice", key: "k2" },
        ]);
        expect(batch[1]).toEqual({ id: batch[0]!.id, deliveries: 1, duplicate: true, entries: [] });
        expect(batch[0]!.entries).toHaveLength(1);
        expect(await countRows(store, "webhook_events")).toBe(3);
        expect(await countRows(store, "webhook_deliveries")).toBe(3);
      });

      it("creates a new event once the key's first use is at or before the cutoff", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        const [first] = await emit(store, { userId: "alice", key: "k" });
        const [inside] = await emit(
          store,
          { userId: "alice", key: "k" },
          { now: at(SECOND), cutoff: at(-1) },
        );
        expect(inside).toMatchObject({ id: first!.id, duplicate: true });
        const [later] = await emit(store, { userId: "alice", key: "k" }, { now: at(SECOND), cutoff: NOW });
        expect(later).toMatchObject({ deliveries: 1, duplicate: false });
        expect(later!.id).not.toBe(first!.id);
        expect(later!.entries).toHaveLength(1);
        const [third] = await emit(store, { userId: "alice", key: "k" }, { now: at(2 * SECOND) });
        expect(third).toEqual({ id: later!.id, deliveries: 1, duplicate: true, entries: [] });
        expect(await countRows(store, "webhook_events")).toBe(2);
        expect(await countRows(store, "webhook_deliveries")).toBe(2);
      });

      it("hands back every payload byte for byte, unicode and number formats included", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const data = {
          text: "héllo ✓ 😀 ünïcode — \u2028 中文",
          escapes: 'quote " backslash \\ slash / tab \t newline \n',
          numbers: [
            0,
            -1,
            1.5,
            1e21,
            1.5e-7,
            12345678901234,
            -0.25,
            5e-324,
            1.7976931348623157e308,
            0.1 + 0.2,
          ],
          nested: { z: 1, a: { y: [true, false, null], b: "" } },
        };
        const row = emitRow({ userId: "alice", data }, NOW);
        const [write] = await store.engine.emit([row], NOW, at(-DAY));
        const id = write!.entries[0]!.id;
        expect((await store.deliveries.get(id))!.payload).toBe(row.body);
        expect((await store.deliveries.list(w.id, {}, { limit: 1 }))[0]!.payload).toBe(row.body);
        expect(JSON.parse((await store.deliveries.get(id))!.payload!).data).toEqual(data);
      });

      it("creates one event when two processes emit the same key at once", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        const other = await peer();
        const writes = await Promise.all(
          [store, other, store, other].map((s) => emit(s, { userId: "alice", key: "race" })),
        );
        const fresh = writes.flat().filter((w) => !w.duplicate);
        expect(fresh).toHaveLength(1);
        expect(new Set(writes.flat().map((w) => w.id))).toEqual(new Set([fresh[0]!.id]));
        expect(await countRows(store, "webhook_events")).toBe(1);
        expect(await countRows(store, "webhook_deliveries")).toBe(1);
      });
    });

    describe("engine.recordOutcomes", () => {
      it("records an outcome on the delivery and an attempt row, returning what it applied", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const e = await deliver("alice");
        const o = outcome(e, { durationMs: 42, responseBody: "accepted ✓", attemptedAt: at(SECOND) });
        expect(await record(store, [o])).toEqual([o]);
        expect(await store.deliveries.get(e.id)).toMatchObject({
          status: "success",
          attempts: 1,
          nextRetryAt: null,
          responseCode: 200,
          responseBody: "accepted ✓",
          durationMs: 42,
          completedAt: at(SECOND),
          errorMessage: null,
        });
        expect(await store.deliveries.attempts(e.id)).toEqual([
          {
            deliveryId: e.id,
            attempt: 1,
            webhookId: w.id,
            attemptedAt: at(SECOND),
            responseCode: 200,
            durationMs: 42,
            errorType: null,
            errorMessage: null,
          },
        ]);
        expect(await lastLeaseOwner(e.id)).toBeNull();
      });

      it("keeps every attempt, in order, through retries to the dead letter", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        const e = await deliver("alice");
        const fail = (attempt: number, retry: string | null) =>
          outcome(e, {
            ...(retry
              ? retrying(retry)
              : { status: "dead_letter" as const, completedAt: at(attempt * HOUR) }),
            attempt,
            attemptedAt: at(attempt * HOUR),
            responseCode: 500 + attempt,
            errorMessage: `HTTP 50${attempt}`,
          });
        await record(store, [fail(1, at(90 * 60_000))]);
        expect(await store.deliveries.get(e.id)).toMatchObject({
          status: "failed",
          attempts: 1,
          nextRetryAt: at(90 * 60_000),
          completedAt: null,
          responseCode: 501,
        });
        await record(store, [fail(2, at(150 * 60_000))]);
        await record(store, [fail(3, null)]);
        expect(await store.deliveries.get(e.id)).toMatchObject({
          status: "dead_letter",
          attempts: 3,
          nextRetryAt: null,
          completedAt: at(3 * HOUR),
          responseCode: 503,
          errorMessage: "HTTP 503",
        });
        const attempts = await store.deliveries.attempts(e.id);
        expect(
          attempts.map((a) => [a.attempt, a.attemptedAt, a.responseCode, a.errorType, a.errorMessage]),
        ).toEqual([
          [1, at(HOUR), 501, "http_status", "HTTP 501"],
          [2, at(2 * HOUR), 502, "http_status", "HTTP 502"],
          [3, at(3 * HOUR), 503, "http_status", "HTTP 503"],
        ]);
      });

      // SQLite rows carry no lease (the engine lock fences a stale writer there); a PostgreSQL row
      // is written only by the claimer whose lease it bears, so a worker that stalled past its
      // lease cannot overwrite what its successor recorded.
      it("applies an outcome only where the delivery's lease is this writer's (or, in SQLite, nobody's)", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const leased = { id: newId("dlv"), webhookId: w.id, priority: 0 };
        await store.deliveries.insertUnqueued({
          id: leased.id,
          webhookId: w.id,
          eventId: newId("evt"),
          event: "webhook.test",
          body: canonicalJson({ test: true }),
          createdAt: NOW,
          leaseOwner: "worker-a",
        });
        const free = await deliver("alice");

        const unleasedApplies = store.dialect === "sqlite";
        expect(
          await record(store, [outcome(leased), outcome(free)], { leaseOwner: "worker-b" }, { claim: false }),
        ).toEqual(unleasedApplies ? [outcome(free)] : []);
        expect(await store.deliveries.get(leased.id)).toMatchObject({ status: "pending", attempts: 0 });
        expect(await store.deliveries.attempts(leased.id)).toEqual([]);
        expect(await lastLeaseOwner(leased.id)).toBe("worker-a");
        expect(await store.deliveries.get(free.id)).toMatchObject(
          unleasedApplies ? { status: "success", attempts: 1 } : { status: "pending", attempts: 0 },
        );

        const failed = outcome(leased, { status: "failed", completedAt: NOW });
        expect(await record(store, [failed], { leaseOwner: "worker-a" }, { claim: false })).toEqual([failed]);
        expect(await store.deliveries.get(leased.id)).toMatchObject({ status: "failed", attempts: 1 });
        expect(await lastLeaseOwner(leased.id)).toBeNull();
        expect((await store.webhooks.get(w.id))?.failureCount).toBe(1);
      });

      it("parks a delivery only while its webhook is disabled as stored, whatever the writer believed", async () => {
        const off = await addWebhook(store, "alice", "https://example.com/off");
        await addWebhook(store, "bob", "https://example.com/on");
        const parkedOff = await deliver("alice");
        const parkedOn = await deliver("bob");
        await store.webhooks.update(off.id, undefined, { active: false }, NOW);
        // The writer saw both disabled (an old copy of "on"); only "off" really is.
        const park = {
          status: "pending" as const,
          attempt: 0,
          attempted: false,
          nextRetryAt: null,
          completedAt: null,
        };
        await record(store, [outcome(parkedOff, park), outcome(parkedOn, park)]);
        expect(await store.deliveries.get(parkedOff.id)).toMatchObject({
          status: "pending",
          nextRetryAt: null,
        });
        const due = await store.deliveries.get(parkedOn.id);
        expect(due?.status).toBe("pending");
        expect(due?.nextRetryAt).not.toBeNull();
        // Enabled again, the parked one falls due.
        await store.webhooks.update(off.id, undefined, { active: true }, NOW);
        expect((await store.deliveries.resumeParked(off.id, NOW)).map((e) => e.id)).toEqual([parkedOff.id]);
        expect(await store.deliveries.get(parkedOff.id)).toMatchObject({ nextRetryAt: NOW });
      });

      it("updates the delivery of an outcome without a request, but writes no attempt and no counters", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const e = await deliver("alice");
        const skipped = outcome(e, {
          status: "failed",
          attempt: 0,
          attempted: false,
          errorMessage: "disabled",
        });
        expect(await record(store, [skipped])).toEqual([]);
        expect(await store.deliveries.get(e.id)).toMatchObject({
          status: "failed",
          nextRetryAt: null,
          errorMessage: "disabled",
        });
        expect(await store.deliveries.attempts(e.id)).toEqual([]);
        expect(await store.webhooks.get(w.id)).toEqual(w);
      });

      it("counts consecutive failures per webhook: failures add up, a success resets", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const v = await addWebhook(store, "alice", "https://example.com/b");
        const entries = await emitEntries(store, alice(6));
        const of = (webhookId: string) => entries.filter((e) => e.webhookId === webhookId);
        const [w1, w2, w3, w4, w5, w6] = of(w.id);
        const [v1] = of(v.id);
        const failAt = (d: typeof w1, s: number) =>
          outcome(d!, { status: "failed", attemptedAt: at(s * SECOND) });
        const okAt = (d: typeof w1, s: number) => outcome(d!, { attemptedAt: at(s * SECOND) });
        const counters = async (id: string) => {
          const h = (await store.webhooks.get(id))!;
          return [h.failureCount, h.lastTriggeredAt, h.lastSuccessAt, h.lastFailureAt];
        };

        await record(store, [failAt(w1, 1), failAt(w2, 2), okAt(v1, 2)]);
        expect(await counters(w.id)).toEqual([2, at(2 * SECOND), null, at(2 * SECOND)]);
        expect(await counters(v.id)).toEqual([0, at(2 * SECOND), at(2 * SECOND), null]);
        await record(store, [failAt(w3, 3)]);
        expect(await counters(w.id)).toEqual([3, at(3 * SECOND), null, at(3 * SECOND)]);
        // A success then a failure in one batch: one failure since the last success.
        await record(store, [okAt(w4, 4), failAt(w5, 5)]);
        expect(await counters(w.id)).toEqual([1, at(5 * SECOND), at(4 * SECOND), at(5 * SECOND)]);
        await record(store, [okAt(w6, 6)]);
        expect(await counters(w.id)).toEqual([0, at(6 * SECOND), at(6 * SECOND), at(5 * SECOND)]);
        expect(await counters(v.id)).toEqual([0, at(2 * SECOND), at(2 * SECOND), null]);
      });

      it("never moves lastTriggeredAt back when an earlier-started attempt is written later", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const [fast, slow] = await emitEntries(store, alice(2));
        await record(store, [outcome(fast!, { attemptedAt: at(10 * SECOND) })]);
        await record(store, [outcome(slow!, { status: "failed", attemptedAt: at(5 * SECOND) })]);
        expect(await store.webhooks.get(w.id)).toMatchObject({
          failureCount: 1,
          lastTriggeredAt: at(10 * SECOND),
          lastSuccessAt: at(10 * SECOND),
          lastFailureAt: at(5 * SECOND),
        });
      });

      it("applies breaker transitions, and disables a webhook once, even in a batch without outcomes", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a", {
          metadata: { team: "ops" },
          retrySchedule: [1000, 5000],
          events: ["memory.created", "sync.failed"],
        });
        await record(store, [], { breakers: [{ webhookId: w.id, state: "open", openedAt: at(SECOND) }] });
        expect(await store.engine.webhookForDispatch(w.id)).toEqual({
          ...w,
          breakerState: "open",
          breakerOpenedAt: at(SECOND),
        });
        await record(store, [], {
          breakers: [{ webhookId: w.id, state: "half_open", openedAt: at(SECOND) }],
          disabled: [{ webhookId: w.id, reason: "410 Gone", at: at(2 * SECOND) }],
        });
        await record(store, [], { disabled: [{ webhookId: w.id, reason: "again", at: at(3 * SECOND) }] });
        const fresh = await store.engine.webhookForDispatch(w.id);
        expect(fresh).toEqual({
          ...w,
          active: false,
          disabledReason: "410 Gone",
          updatedAt: at(2 * SECOND),
          breakerState: "half_open",
          breakerOpenedAt: at(SECOND),
        });
        expect(fresh?.active).toBe(false);
        await record(store, [], { breakers: [{ webhookId: w.id, state: "closed", openedAt: null }] });
        expect(await store.webhooks.get(w.id)).toMatchObject({
          breakerState: "closed",
          breakerOpenedAt: null,
        });
        // Disabled webhooks get no more deliveries.
        expect((await emit(store, { userId: "alice" }))[0]!.deliveries).toBe(0);
        await store.webhooks.delete(w.id);
        expect(await store.engine.webhookForDispatch(w.id)).toBeNull();
      });
    });

    describe("deliveries", () => {
      it("gets a delivery, scoped to its webhook when one is named", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const v = await addWebhook(store, "alice", "https://example.com/b");
        const [e] = (await emitEntries(store, { userId: "alice" })).filter((x) => x.webhookId === w.id);
        expect((await store.deliveries.get(e!.id))?.webhookId).toBe(w.id);
        expect((await store.deliveries.get(e!.id, w.id))?.id).toBe(e!.id);
        expect(await store.deliveries.get(e!.id, v.id)).toBeNull();
        expect(await store.deliveries.get(newId("dlv"))).toBeNull();
      });

      it("lists newest first, filtered by status, event and time, with a before cursor", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a", { events: ["*"] });
        await addWebhook(store, "bob", "https://example.com/b", { events: ["*"] });
        const events = ["memory.created", "sync.failed", "memory.created", "memory.created", "sync.failed"];
        const d: string[] = [];
        for (const [i, event] of events.entries()) {
          d.push((await deliver("alice", { event, now: at(i * SECOND) })).id);
          await deliver("bob", { event, now: at(i * SECOND) });
        }
        await record(store, [
          outcome({ id: d[0]!, webhookId: w.id }),
          outcome({ id: d[2]!, webhookId: w.id }),
        ]);
        await record(store, [outcome({ id: d[3]!, webhookId: w.id }, { status: "dead_letter" })]);

        const ids = async (filter: DeliveryFilter, before?: string, limit = 10) =>
          (await store.deliveries.list(w.id, filter, { limit, before })).map((x) => x.id);
        expect(await ids({})).toEqual([d[4], d[3], d[2], d[1], d[0]]);
        expect(await ids({ status: "success" })).toEqual([d[2], d[0]]);
        expect(await ids({ status: "pending" })).toEqual([d[4], d[1]]);
        expect(await ids({ event: "sync.failed" })).toEqual([d[4], d[1]]);
        expect(await ids({ since: at(SECOND), until: at(3 * SECOND) })).toEqual([d[2], d[1]]);
        expect(await ids({ since: at(SECOND), status: "success" })).toEqual([d[2]]);
        expect(await ids({ event: "memory.created", until: at(3 * SECOND) })).toEqual([d[2], d[0]]);
        expect(await ids({}, undefined, 2)).toEqual([d[4], d[3]]);
        expect(await ids({}, d[3], 2)).toEqual([d[2], d[1]]);
        expect(await ids({}, d[1], 2)).toEqual([d[0]]);
        expect(await ids({ event: "memory.created" }, d[3])).toEqual([d[2], d[0]]);
        expect(await store.deliveries.list(newId("whk"), {}, { limit: 10 })).toEqual([]);
        const [full] = await store.deliveries.list(w.id, {}, { limit: 1, before: d[3] });
        expect(full).toEqual(await store.deliveries.get(d[2]!));
      });

      it("pages through a large backlog without gaps or repeats", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const entries = await emitEntries(
          store,
          Array.from({ length: 600 }, (_, i) => ({ userId: "alice", data: { i } })),
        );
        const seen: string[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await store.deliveries.list(w.id, {}, { limit: 128, before });
          seen.push(...page.map((x) => x.id));
          if (page.length < 128) break;
          before = page[page.length - 1]!.id;
        }
        expect(seen).toEqual(entries.map((e) => e.id).reverse());
      });

      it("requeues a finished delivery as pending and due now; refuses one still pending", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const [ok, dead] = await emitEntries(store, alice(2));
        expect(await store.deliveries.requeue(ok!.id, NOW)).toBe(false);
        await record(store, [outcome(ok!), outcome(dead!, { status: "dead_letter" })]);
        expect(await store.queue.readyWebhooks(at(HOUR))).toEqual([]);

        expect(await store.deliveries.requeue(ok!.id, at(HOUR))).toBe(true);
        expect(await store.deliveries.get(ok!.id)).toMatchObject({
          status: "pending",
          nextRetryAt: at(HOUR),
          completedAt: null,
          attempts: 1,
        });
        expect(await store.deliveries.requeue(ok!.id, at(HOUR))).toBe(false);
        expect(await store.deliveries.requeue(dead!.id, at(2 * HOUR))).toBe(true);
        expect(await store.deliveries.get(dead!.id)).toMatchObject({
          status: "pending",
          nextRetryAt: at(2 * HOUR),
        });
        expect(await store.queue.readyWebhooks(at(HOUR))).toEqual([w.id]);
        expect(await store.deliveries.requeue(newId("dlv"), NOW)).toBe(false);
      });

      it("stores an unqueued delivery pending with no due time: never ready, not in the depth", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const id = newId("dlv");
        const eventId = newId("evt");
        const body = canonicalJson({ event: "webhook.test", data: { hello: "wörld ✓" } });
        await store.deliveries.insertUnqueued({
          id,
          webhookId: w.id,
          eventId,
          event: "webhook.test",
          body,
          createdAt: NOW,
          leaseOwner: "manager-1",
        });
        expect(await store.deliveries.get(id)).toMatchObject({
          webhookId: w.id,
          eventId,
          event: "webhook.test",
          payload: body,
          status: "pending",
          priority: 0,
          attempts: 0,
          nextRetryAt: null,
          createdAt: NOW,
        });
        expect(await store.queue.readyWebhooks(at(365 * DAY))).toEqual([]);
        expect(await store.queue.depth()).toEqual({ high: 0, normal: 0, low: 0 });
        const o = outcome({ id, webhookId: w.id, priority: 0 });
        expect(await record(store, [o], { leaseOwner: "manager-1" })).toEqual([o]);
        expect(await store.deliveries.get(id)).toMatchObject({ status: "success", attempts: 1 });
      });

      it("counts deliveries by status, per webhook, since a time", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const v = await addWebhook(store, "alice", "https://example.com/b");
        const old = (await emitEntries(store, alice(2), { now: at(-2 * DAY) })).filter(
          (e) => e.webhookId === w.id,
        );
        const recent = (await emitEntries(store, alice(4))).filter((e) => e.webhookId === w.id);
        await record(store, [
          outcome(old[0]!),
          outcome(old[1]!, { status: "dead_letter" }),
          outcome(recent[0]!),
          outcome(recent[1]!, retrying(at(HOUR))),
          outcome(recent[2]!, { status: "dead_letter" }),
        ]);
        expect(await store.deliveries.countByStatus(w.id, null)).toEqual(byStatus(1, 2, 1, 2));
        expect(await store.deliveries.countByStatus(w.id, at(-DAY))).toEqual(byStatus(1, 1, 1, 1));
        expect(await store.deliveries.countByStatus(v.id, at(-DAY))).toEqual(byStatus(4, 0, 0, 0));
        expect(await store.deliveries.countByStatus(newId("whk"), null)).toEqual(byStatus(0, 0, 0, 0));
      });

      it("summarises attempt durations (n, avg, p50, p95) alike on every backend", async () => {
        const w = await addWebhook(store, "alice", "https://example.com/a");
        const v = await addWebhook(store, "alice", "https://example.com/b");
        expect(await store.deliveries.durations(w.id, null)).toEqual(NO_DURATIONS);
        const entries = await emitEntries(store, alice(10));
        const mine = entries.filter((e) => e.webhookId === w.id);
        const ms = [120, 5, 48, 300, 7, 7, 91, 64, 1500, 33];
        await record(store, [
          ...mine.map((e, i) => outcome(e, { durationMs: ms[i]!, attemptedAt: at(i * SECOND) })),
          ...entries.filter((e) => e.webhookId === v.id).map((e) => outcome(e, { durationMs: 99_999 })),
        ]);
        expect(await store.deliveries.durations(w.id, null)).toEqual({
          n: 10,
          avg: 217.5,
          p50: 64,
          p95: 1500,
        });
        expect(await store.deliveries.durations(w.id, at(6 * SECOND))).toEqual({
          n: 4,
          avg: 422,
          p50: 91,
          p95: 1500,
        });
        expect(await store.deliveries.durations(w.id, at(HOUR))).toEqual(NO_DURATIONS);
      });

      it("purges old finished deliveries with their attempts, never work still to do", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        const old = at(-40 * DAY);
        const [success, dead, gaveUp, retry, pending] = await emitEntries(store, alice(5), { now: old });
        const [recent] = await emitEntries(store, { userId: "alice" });
        await record(store, [
          outcome(success!, { attemptedAt: old }),
          outcome(dead!, { status: "dead_letter", attemptedAt: old }),
          outcome(gaveUp!, { status: "failed", attemptedAt: old }),
          outcome(retry!, retrying(at(-39 * DAY), { attemptedAt: old })),
          outcome(recent!),
        ]);
        // The old events of the retry and the pending delivery stay: they hold those payloads.
        expect(await store.deliveries.purgeBefore(at(-30 * DAY), 100)).toEqual({ deliveries: 3, events: 3 });
        for (const gone of [success, dead, gaveUp]) {
          expect(await store.deliveries.get(gone!.id)).toBeNull();
          expect(await store.deliveries.attempts(gone!.id)).toEqual([]);
        }
        for (const kept of [retry, pending, recent]) {
          const d = await store.deliveries.get(kept!.id);
          expect(JSON.parse(d!.payload!)).toMatchObject({ event: "memory.created", user_id: "alice" });
        }
        expect(await store.deliveries.attempts(retry!.id)).toHaveLength(1);
        expect(await countRows(store, "webhook_delivery_attempts")).toBe(2);
        expect(await countRows(store, "webhook_events")).toBe(3);
        expect(await store.deliveries.purgeBefore(at(-30 * DAY), 100)).toEqual({ deliveries: 0, events: 0 });
      });

      it("purges at most `limit` deliveries and events per call", async () => {
        await addWebhook(store, "alice", "https://example.com/a");
        const entries = await emitEntries(store, alice(5), { now: at(-40 * DAY) });
        await record(
          store,
          entries.map((e) => outcome(e)),
        );
        const cutoff = at(-30 * DAY);
        expect(await store.deliveries.purgeBefore(cutoff, 2)).toEqual({ deliveries: 2, events: 2 });
        expect(await store.deliveries.purgeBefore(cutoff, 2)).toEqual({ deliveries: 2, events: 2 });
        expect(await store.deliveries.purgeBefore(cutoff, 2)).toEqual({ deliveries: 1, events: 1 });
        expect(await countRows(store, "webhook_deliveries")).toBe(0);
        expect(await countRows(store, "webhook_delivery_attempts")).toBe(0);
      });
    });

    describe("api keys", () => {
      it("stores API keys only as hashes and honours revocation", async () => {
        const a = await createApiKey(store, { userId: "alice", role: "admin", name: "ci", now: NOW });
        const b = await createApiKey(store, { userId: "bob", role: "user", now: at(SECOND) });
        expect(a.key).toMatch(/^cwk_[A-Za-z0-9_-]{43}$/);
        expect(a.record).toMatchObject({
          userId: "alice",
          role: "admin",
          name: "ci",
          prefix: a.key.slice(0, 10),
        });
        const raw = await store.db.selectFrom("api_keys").selectAll().orderBy("id").execute();
        expect(raw.map((r) => r.key_hash)).toEqual([hashApiKey(a.key), hashApiKey(b.key)]);
        expect(JSON.stringify(raw)).not.toContain(a.key.slice(10));
        expect(JSON.stringify(raw)).not.toContain(b.key.slice(10));

        expect(await findApiKey(store, a.key)).toEqual(a.record);
        expect(await findApiKey(store, `${a.key}x`)).toBeNull();
        expect(await store.apiKeys.list()).toEqual([a.record, b.record]);
        expect(await store.apiKeys.countActive()).toBe(2);

        expect(await store.apiKeys.revoke(a.record.id, at(HOUR))).toBe(true);
        expect(await store.apiKeys.revoke(a.record.id, at(2 * HOUR))).toBe(false);
        expect(await store.apiKeys.revoke(newId("key"), NOW)).toBe(false);
        expect(await findApiKey(store, a.key)).toBeNull();
        expect(await findApiKey(store, b.key)).toEqual(b.record);
        expect(await store.apiKeys.countActive()).toBe(1);
        expect(await store.apiKeys.list()).toEqual([{ ...a.record, revokedAt: at(HOUR) }, b.record]);
      });

      it("records when a key was last used", async () => {
        const { key, record: rec } = await createApiKey(store, { userId: "alice", role: "user", now: NOW });
        await store.apiKeys.touch(rec.id, at(HOUR));
        expect(await findApiKey(store, key)).toEqual({ ...rec, lastUsedAt: at(HOUR) });
        await store.apiKeys.touch(rec.id, at(2 * HOUR));
        expect((await store.apiKeys.list())[0]).toEqual({ ...rec, lastUsedAt: at(2 * HOUR) });
        await store.apiKeys.touch(newId("key"), NOW);
        expect(await store.apiKeys.countActive()).toBe(1);
      });
    });
  });
}
