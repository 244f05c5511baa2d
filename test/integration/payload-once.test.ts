/**
 * An event's payload is stored once, on its event row (CONTRACT §2): its deliveries carry none,
 * and every path that reads a delivery's body — history, the claim that sends it, a retry by hand,
 * the Redis queue's lease stamping — gets the same bytes from the event. Rows written before
 * migration 003 (each with its own copy) still read back whole after it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MISSING_BODY_MESSAGE } from "../../src/dispatcher.js";
import { newId } from "../../src/ids.js";
import { migrate, openStore, type Store } from "../../src/store/index.js";
import { startTestEngine } from "../helpers/engine.js";
import { startReceiver } from "../helpers/receiver.js";
import { createPgSchema } from "../helpers/services.js";
import {
  addWebhook,
  asPostgres,
  asSqlite,
  at,
  backends,
  DAY,
  emitRow,
  NOW,
  outcome,
  record,
} from "../helpers/stores.js";

for (const backend of backends) {
  describe.skipIf(backend.skip)(`payload stored once per event (${backend.name})`, () => {
    let cleanup: (() => Promise<void>) | undefined;

    afterEach(async () => {
      await cleanup?.();
      cleanup = undefined;
    });

    /** Every way the engine reads a delivery's body, for one delivery of webhook `w`. */
    async function bodiesOf(store: Store, w: string, id: string): Promise<Array<string | null>> {
      const out = [(await store.deliveries.get(id))!.payload];
      out.push((await store.deliveries.list(w, {}, { limit: 10 })).find((d) => d.id === id)!.payload);
      if (store.dialect === "sqlite") {
        out.push(
          asSqlite(store)
            .queue.due(w, at(DAY), 1, 10)
            .find((d) => d.id === id)!.payload,
        );
      } else {
        const pg = asPostgres(store);
        const [claimed] = await pg.queue.claim(
          [{ webhookId: w, max: 10, limit: 10 }],
          at(DAY),
          at(DAY + 60_000),
          "owner-a",
        );
        out.push(claimed!.payload);
        // The Redis queue's path: stamping a lease Redis handed out returns the row to send.
        const [stamped] = await pg.queue.stampLeases([id], at(DAY), at(DAY + 60_000), "owner-a");
        out.push(stamped!.payload);
      }
      return out;
    }

    it("writes the body on the event only, and every read and retry path returns it", async () => {
      const opened = await backend.open();
      cleanup = opened.cleanup;
      const { store } = opened;
      const hooks = await Promise.all(
        ["a", "b", "c"].map((p) => addWebhook(store, "alice", `https://example.com/${p}`)),
      );
      const row = emitRow({ userId: "alice", data: { text: "héllo ✓", n: [1.5, 1e21] } }, NOW);
      const [write] = await store.engine.emit([row], NOW, at(-DAY));
      expect(write!.entries).toHaveLength(3);

      const own = await store.db.selectFrom("webhook_deliveries").select("payload").execute();
      expect(own.map((r) => r.payload)).toEqual([null, null, null]);
      const events = await store.db.selectFrom("webhook_events").select("payload").execute();
      expect(events).toHaveLength(1);
      expect(JSON.parse(events[0]!.payload)).toEqual(JSON.parse(row.body));

      for (const e of write!.entries) {
        expect(await bodiesOf(store, e.webhookId, e.id)).toEqual(
          Array((store.dialect === "sqlite" ? 3 : 4) as number).fill(row.body),
        );
      }
      // Delivered, then queued again by hand: the retry sends the same bytes.
      const first = write!.entries.find((e) => e.webhookId === hooks[0]!.id)!;
      await record(store, [outcome(first)]);
      expect(await store.deliveries.requeue(first.id, at(DAY))).toBe(true);
      expect((await bodiesOf(store, first.webhookId, first.id))[2]).toBe(row.body);
    });

    it("dead-letters a delivery whose payload is gone instead of sending an empty body", async () => {
      const rx = await startReceiver();
      const t = await startTestEngine({ backend: backend.name });
      cleanup = async () => {
        await t.cleanup();
        await rx.close();
      };
      const { webhook } = await t.engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
      // A row whose event was deleted by hand (or written by a release that kept no payload).
      const id = newId("dlv");
      const now = new Date().toISOString();
      await t.store.db
        .insertInto("webhook_deliveries")
        .values({
          id,
          webhook_id: webhook.id,
          event_id: newId("evt"),
          event: "memory.created",
          payload: null,
          status: "pending",
          priority: 1,
          next_retry_at: now,
          created_at: now,
        })
        .execute();
      t.engine.worker!.invalidate(webhook.id);
      const deadline = Date.now() + 10_000;
      while ((await t.store.deliveries.get(id))?.status !== "dead_letter" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await t.store.deliveries.get(id)).toMatchObject({
        status: "dead_letter",
        attempts: 0,
        payload: null,
        errorMessage: MISSING_BODY_MESSAGE,
      });
      expect(rx.requests).toHaveLength(0);
      // History still answers, saying there is no body.
      expect(await t.engine.manager.delivery("alice", webhook.id, id)).toMatchObject({
        status: "dead_letter",
        payload: null,
      });
    });

    it("keeps every payload written before migration 003", async () => {
      let store: Store;
      if (backend.name === "sqlite") {
        const dir = mkdtempSync(join(tmpdir(), "cw-payload-"));
        store = openStore({ sqlitePath: join(dir, "old.db") });
        cleanup = async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        };
      } else {
        const schema = await createPgSchema();
        store = openStore({ databaseUrl: schema.url, pgPoolSize: 2 });
        cleanup = async () => {
          await store.close();
          await schema.drop();
        };
      }
      await migrate(store, "002_worker_heartbeats");
      const w = await addWebhook(store, "alice", "https://example.com/a");
      const withEvent = emitRow({ userId: "alice", data: { n: 1 } }, NOW);
      const eventGone = emitRow({ userId: "alice", data: { n: 2 } }, NOW);
      await store.db
        .insertInto("webhook_events")
        .values({
          id: withEvent.eventId,
          user_id: "alice",
          event: "memory.created",
          payload: withEvent.body,
          priority: "normal",
          idempotency_key: null,
          delivery_count: 1,
          created_at: NOW,
        })
        .execute();
      const old = [withEvent, eventGone].map((r) => ({
        id: newId("dlv"),
        webhook_id: w.id,
        event_id: r.eventId,
        event: "memory.created",
        payload: r.body,
        status: "pending" as const,
        priority: 1,
        next_retry_at: NOW,
        created_at: NOW,
      }));
      await store.db.insertInto("webhook_deliveries").values(old).execute();

      if (store.dialect === "sqlite") {
        // A failure half-way through leaves the table as it was, and the migration can run again.
        store.sqlite.exec("ALTER TABLE webhook_deliveries ADD COLUMN own_payload TEXT");
        await expect(migrate(store)).rejects.toThrow(/003_payload_once/);
        const kept = store.sqlite.prepare("SELECT payload FROM webhook_deliveries ORDER BY id").all();
        expect(kept).toEqual(old.map((o) => ({ payload: o.payload })));
        store.sqlite.exec("ALTER TABLE webhook_deliveries DROP COLUMN own_payload");
      }
      expect((await migrate(store)).applied).toEqual(["003_payload_once"]);
      expect((await store.deliveries.get(old[0]!.id))!.payload).toBe(withEvent.body);
      expect((await store.deliveries.get(old[1]!.id))!.payload).toBe(eventGone.body);
      // SQLite rewrites the table and drops the copy where the event row holds the payload;
      // PostgreSQL keeps old copies (no table rewrite under the migration's lock). Both keep the
      // copy where nothing else holds it.
      const own = await store.db
        .selectFrom("webhook_deliveries")
        .select(["id", "payload"])
        .orderBy("id")
        .execute();
      expect(own.map((r) => r.payload === null)).toEqual([store.dialect === "sqlite", false]);
    });
  });
}
