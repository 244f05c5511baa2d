/**
 * Storage conformance: the same cases on every backend (River's habit). A backend passes only if
 * every case passes, so SQLite and PostgreSQL cannot drift apart.
 */
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/ids.js";
import {
  countByStatus,
  createApiKey,
  DuplicateWebhookError,
  deleteWebhook,
  findApiKey,
  getDelivery,
  getWebhook,
  insertAttempt,
  insertDeliveries,
  insertWebhook,
  listApiKeys,
  listAttempts,
  listDeliveries,
  listSubscribers,
  listWebhooks,
  migrate,
  type NewDelivery,
  revokeApiKey,
  type Store,
  updateDelivery,
  updateWebhook,
} from "../../src/store/index.js";
import { backends } from "../helpers/stores.js";

const NOW = "2026-11-29T12:00:00.000Z";

for (const backend of backends) {
  describe.skipIf(backend.skip)(`store conformance: ${backend.name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await backend.open());
    });
    afterEach(async () => {
      await cleanup();
    });

    const webhook = (userId: string, url: string, events = ["memory.created"]) =>
      insertWebhook(store, { id: newId("whk"), userId, url, secret: "whsec_x", events, now: NOW });

    const deliveries = (webhookId: string, n: number, event = "memory.created"): NewDelivery[] =>
      Array.from({ length: n }, (_, i) => ({
        id: newId("dlv"),
        webhookId,
        eventId: newId("evt"),
        event,
        payload: JSON.stringify({ i, text: "héllo ✓ 😀" }),
        priority: 1,
        createdAt: new Date(Date.parse(NOW) + i).toISOString(),
        nextRetryAt: NOW,
      }));

    it("migrates idempotently and creates every named table and index", async () => {
      expect((await migrate(store)).applied).toEqual([]);
      const names =
        store.dialect === "sqlite"
          ? (await sql<{ name: string }>`select name from sqlite_master`.execute(store.db)).rows.map(
              (r) => r.name,
            )
          : (
              await sql<{
                name: string;
              }>`select tablename as name from pg_tables where schemaname = current_schema()
                union all select indexname from pg_indexes where schemaname = current_schema()`.execute(
                store.db,
              )
            ).rows.map((r) => r.name);
      for (const n of [
        "webhooks",
        "webhook_deliveries",
        "webhook_delivery_attempts",
        "api_keys",
        "idx_webhooks_user_id",
        "idx_webhooks_user_active",
        "idx_deliveries_webhook_id",
        "idx_deliveries_status",
        "idx_deliveries_next_retry",
        "idx_deliveries_created_at",
      ]) {
        expect(names).toContain(n);
      }
    });

    it("creates, reads and round-trips every webhook field", async () => {
      const created = await insertWebhook(store, {
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
      const got = await getWebhook(store, created.id);
      expect(got).toEqual(created);
      expect(got).toMatchObject({
        userId: "u1",
        events: ["memory.created", "sync.failed"],
        active: true,
        metadata: { team: "ünïcode 😀", n: 1.5, nested: { a: [1, 2] } },
        retrySchedule: [1000, 60000],
        createdAt: NOW,
        failureCount: 0,
        breakerState: "closed",
      });
    });

    it("scopes reads, updates and deletes to the owning user", async () => {
      const w = await webhook("alice", "https://example.com/a");
      expect(await getWebhook(store, w.id, "bob")).toBeNull();
      expect(await updateWebhook(store, w.id, "bob", { name: "x" }, NOW)).toBeNull();
      expect(await deleteWebhook(store, w.id, "bob")).toBe(false);
      expect(await getWebhook(store, w.id, "alice")).not.toBeNull();
      expect(await deleteWebhook(store, w.id, "alice")).toBe(true);
      expect(await getWebhook(store, w.id)).toBeNull();
    });

    it("refuses a second webhook for the same user and URL, on insert and on update", async () => {
      await webhook("alice", "https://example.com/a");
      await expect(webhook("alice", "https://example.com/a")).rejects.toBeInstanceOf(DuplicateWebhookError);
      await webhook("bob", "https://example.com/a");
      const other = await webhook("alice", "https://example.com/b");
      await expect(
        updateWebhook(store, other.id, "alice", { url: "https://example.com/a" }, NOW),
      ).rejects.toBeInstanceOf(DuplicateWebhookError);
      expect((await getWebhook(store, other.id))?.url).toBe("https://example.com/b");
    });

    it("pages through a user's webhooks without gaps or repeats", async () => {
      const ids = [];
      for (let i = 0; i < 7; i++) ids.push((await webhook("alice", `https://example.com/${i}`)).id);
      await webhook("bob", "https://example.com/bob");
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await listWebhooks(store, "alice", { limit: 3, after });
        seen.push(...page.map((w) => w.id));
        if (page.length < 3) break;
        after = page[page.length - 1]!.id;
      }
      expect(seen).toEqual(ids);
    });

    it("updates fields partially and toggles active", async () => {
      const w = await webhook("alice", "https://example.com/a");
      const u = await updateWebhook(
        store,
        w.id,
        "alice",
        { active: false, events: ["*"], metadata: null },
        NOW,
      );
      expect(u).toMatchObject({ active: false, events: ["*"], metadata: null, url: w.url, name: null });
    });

    it("lists only active subscribers of an event, including wildcard ones", async () => {
      const a = await webhook("alice", "https://example.com/a", ["memory.created"]);
      const b = await webhook("alice", "https://example.com/b", ["*"]);
      const c = await webhook("alice", "https://example.com/c", ["sync.failed"]);
      const d = await webhook("alice", "https://example.com/d", ["memory.created"]);
      await updateWebhook(store, d.id, "alice", { active: false }, NOW);
      await webhook("bob", "https://example.com/e", ["*"]);
      const subs = (await listSubscribers(store, "alice", "memory.created")).map((w) => w.id).sort();
      expect(subs).toEqual([a.id, b.id].sort());
      expect((await listSubscribers(store, "alice", "sync.failed")).map((w) => w.id).sort()).toEqual(
        [b.id, c.id].sort(),
      );
    });

    it("stores deliveries in bulk and lists them newest first with filters and a cursor", async () => {
      const w = await webhook("alice", "https://example.com/a");
      const rows = [...deliveries(w.id, 1200), ...deliveries(w.id, 5, "sync.failed")];
      await insertDeliveries(store, rows);
      const first = await getDelivery(store, rows[0]!.id);
      expect(first).toMatchObject({ status: "pending", attempts: 0, nextRetryAt: NOW });
      expect(JSON.parse(first!.payload)).toEqual({ i: 0, text: "héllo ✓ 😀" });

      const page1 = await listDeliveries(store, w.id, {}, { limit: 4 });
      expect(page1.map((d) => d.id)).toEqual(
        rows
          .slice(-4)
          .reverse()
          .map((d) => d.id),
      );
      const page2 = await listDeliveries(store, w.id, {}, { limit: 4, before: page1[3]!.id });
      expect(page2.map((d) => d.id)).toEqual(
        rows
          .slice(-8, -4)
          .reverse()
          .map((d) => d.id),
      );
      expect((await listDeliveries(store, w.id, { event: "sync.failed" }, { limit: 100 })).length).toBe(5);
      const windowed = await listDeliveries(
        store,
        w.id,
        { since: rows[10]!.createdAt, until: rows[20]!.createdAt },
        { limit: 100 },
      );
      expect(windowed.length).toBe(10);
    });

    it("records outcomes and every attempt, and counts by status", async () => {
      const w = await webhook("alice", "https://example.com/a");
      const [d] = deliveries(w.id, 1);
      await insertDeliveries(store, [d!]);
      for (const attempt of [1, 2]) {
        await insertAttempt(store, {
          deliveryId: d!.id,
          attempt,
          webhookId: w.id,
          attemptedAt: NOW,
          responseCode: 500,
          durationMs: 12,
          errorType: "http_status",
          errorMessage: `HTTP 500 on attempt ${attempt}`,
        });
      }
      await updateDelivery(store, d!.id, {
        status: "dead_letter",
        attempts: 2,
        responseCode: 500,
        responseBody: "oops",
        completedAt: NOW,
        nextRetryAt: null,
        errorMessage: "HTTP 500",
      });
      expect(await getDelivery(store, d!.id)).toMatchObject({
        status: "dead_letter",
        attempts: 2,
        responseCode: 500,
        responseBody: "oops",
        completedAt: NOW,
        nextRetryAt: null,
      });
      const attempts = await listAttempts(store, d!.id);
      expect(attempts.map((a) => [a.attempt, a.errorMessage])).toEqual([
        [1, "HTTP 500 on attempt 1"],
        [2, "HTTP 500 on attempt 2"],
      ]);
      expect(await countByStatus(store)).toEqual({ pending: 0, success: 0, failed: 0, dead_letter: 1 });
    });

    it("deletes a webhook's deliveries and attempts with it", async () => {
      const w = await webhook("alice", "https://example.com/a");
      const rows = deliveries(w.id, 3);
      await insertDeliveries(store, rows);
      await insertAttempt(store, {
        deliveryId: rows[0]!.id,
        attempt: 1,
        webhookId: w.id,
        attemptedAt: NOW,
        responseCode: 200,
        durationMs: 1,
        errorType: null,
        errorMessage: null,
      });
      await deleteWebhook(store, w.id);
      expect(await getDelivery(store, rows[0]!.id)).toBeNull();
      expect(await listAttempts(store, rows[0]!.id)).toEqual([]);
    });

    it("stores API keys only as hashes and honours revocation", async () => {
      const { key, record } = await createApiKey(store, { userId: "alice", role: "admin", now: NOW });
      expect(key).toMatch(/^cwk_[A-Za-z0-9_-]{43}$/);
      const raw = await store.db.selectFrom("api_keys").selectAll().execute();
      expect(JSON.stringify(raw)).not.toContain(key.slice(4));
      expect(await findApiKey(store, key)).toMatchObject({ id: record.id, userId: "alice", role: "admin" });
      expect(await findApiKey(store, `${key}x`)).toBeNull();
      expect(await revokeApiKey(store, record.id, NOW)).toBe(true);
      expect(await revokeApiKey(store, record.id, NOW)).toBe(false);
      expect(await findApiKey(store, key)).toBeNull();
      expect((await listApiKeys(store))[0]).toMatchObject({ id: record.id, revokedAt: NOW });
    });
  });
}
