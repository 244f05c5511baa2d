/**
 * Webhook management as a library user (and the API) sees it: test sends, manual retries,
 * statistics, per-webhook retry schedules and the retention purge.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { ManagerError } from "../../src/manager.js";
import { purgeExpired, webhookStats } from "../../src/stats.js";
import { verifyWebhook } from "../../src/verify.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";

const open: Array<{ cleanup(): Promise<void> } | Receiver> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await ("cleanup" in o ? o.cleanup() : o.close());
});
async function setup(opts: Parameters<typeof startTestEngine>[0] = {}): Promise<TestEngine> {
  const t = await startTestEngine(opts);
  open.push(t);
  return t;
}
async function receiver(reply?: Parameters<typeof startReceiver>[0]): Promise<Receiver> {
  const r = await startReceiver(reply);
  open.push(r);
  return r;
}

describe("webhook manager", () => {
  it("sends a signed webhook.test at once and reports and records the outcome", async () => {
    const rx = await receiver();
    const t = await setup();
    const { webhook, secret } = await t.engine.manager.create("alice", {
      url: `${rx.url}/h`,
      events: ["sync.failed"],
    });
    const ok = await t.engine.manager.test("alice", webhook.id);
    expect(ok).toMatchObject({ success: true, status_code: 200, error: null });
    const event = verifyWebhook<{ event: string; data: { message: string } }>({
      body: rx.requests[0]!.body,
      headers: rx.requests[0]!.headers,
      secret,
    });
    expect(event).toMatchObject({ event: "webhook.test", data: { message: "This is a test delivery" } });
    rx.setReply({ status: 503, body: "down" });
    const bad = await t.engine.manager.test("alice", webhook.id);
    expect(bad).toMatchObject({ success: false, status_code: 503 });
    expect(bad.error).toContain("503");
    // Recorded like any delivery, never retried.
    const detail = await t.engine.manager.delivery("alice", webhook.id, bad.delivery_id);
    expect(detail).toMatchObject({
      event: "webhook.test",
      status: "failed",
      attempts: 1,
      next_retry_at: null,
    });
    expect(detail.attempt_history).toHaveLength(1);
    await expect(t.engine.manager.test("bob", webhook.id)).rejects.toMatchObject({ code: "not_found" });
  });

  it("queues a finished delivery again on request, and refuses while it is pending", async () => {
    const rx = await receiver({ reply: { status: 500 } });
    const clock = new ManualClock();
    const t = await setup({ clock, config: { retrySchedule: [] } });
    const { webhook } = await t.engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    const [dead] = (await t.engine.manager.deliveries("alice", webhook.id, { status: "dead_letter" })).data;
    expect(dead).toBeDefined();
    rx.setReply({ status: 200 });
    const queued = await t.engine.manager.retry("alice", webhook.id, dead!.id);
    expect(queued.status).toBe("pending");
    await expect(t.engine.manager.retry("alice", webhook.id, dead!.id)).rejects.toMatchObject({
      code: "conflict",
    });
    await rx.waitForRequests(2);
    await t.engine.worker!.idle();
    const after = await t.engine.manager.delivery("alice", webhook.id, dead!.id);
    expect(after).toMatchObject({ status: "success", attempts: 2 });
    // The same delivery id both times: receivers de-duplicate on it.
    expect(rx.requests.map((r) => r.headers["webhook-id"])).toEqual([dead!.id, dead!.id]);
    await expect(t.engine.manager.retry("bob", webhook.id, dead!.id)).rejects.toBeInstanceOf(ManagerError);
  });

  it("follows a webhook's own retry schedule", async () => {
    const rx = await receiver({ reply: { status: 500 } });
    const clock = new ManualClock();
    const t = await setup({ clock });
    const { webhook } = await t.engine.manager.create("alice", {
      url: `${rx.url}/h`,
      events: ["*"],
      retry_schedule: ["2s"],
    });
    expect(webhook.retry_schedule).toEqual(["2s"]);
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    await clock.advance(1999);
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(1);
    await clock.advance(1);
    await rx.waitForRequests(2);
    await t.engine.worker!.idle();
    const [d] = (await t.engine.manager.deliveries("alice", webhook.id, {})).data;
    expect(d).toMatchObject({ status: "dead_letter", attempts: 2 });
  });

  it("computes statistics by status with success rate and duration percentiles", async () => {
    const rx = await receiver();
    rx.enqueue({ status: 500 }, { status: 500 });
    const t = await setup({ config: { retrySchedule: [] } });
    const { webhook } = await t.engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
    await t.engine.emitter.emitBatch(
      Array.from({ length: 10 }, () => ({ event: "memory.created", userId: "alice", data: {} })),
    );
    await rx.waitForRequests(10);
    await t.engine.worker!.idle();
    const stats = await webhookStats(t.store, webhook.id, Date.now());
    for (const w of [stats.all_time, stats.last_24h, stats.last_7d]) {
      expect(w.by_status).toEqual({ pending: 0, success: 8, failed: 0, dead_letter: 2 });
      expect(w.success_rate).toBeCloseTo(0.8);
      expect(w.duration_ms.p50).not.toBeNull();
      expect(w.duration_ms.p95!).toBeGreaterThanOrEqual(w.duration_ms.p50!);
    }
  });

  it("purges finished history past retention in batches, never pending work", async () => {
    const rx = await receiver();
    const t = await setup({ workers: false });
    const { webhook } = await t.engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
    await t.engine.emitter.emitBatch(
      Array.from({ length: 25 }, () => ({ event: "memory.created", userId: "alice", data: {} })),
    );
    const old = "2020-01-01T00:00:00.000Z";
    const ids = (await t.engine.manager.deliveries("alice", webhook.id, { limit: 100 })).data.map(
      (d) => d.id,
    );
    await t.store.db.updateTable("webhook_deliveries").set({ created_at: old }).execute();
    await t.store.db.updateTable("webhook_events").set({ created_at: old }).execute();
    await t.store.db
      .updateTable("webhook_deliveries")
      .set({ status: "success", next_retry_at: null })
      .where("id", "in", ids.slice(0, 20))
      .execute();
    const purged = await purgeExpired(t.store, { now: Date.now(), retentionDays: 30, batch: 7 });
    // The five pending deliveries keep their events: the payload is stored there, once.
    expect(purged).toEqual({ deliveries: 20, events: 20 });
    const left = (await t.engine.manager.deliveries("alice", webhook.id, { limit: 100 })).data;
    expect(left.map((d) => d.status)).toEqual(["pending", "pending", "pending", "pending", "pending"]);
    for (const d of left) {
      const one = await t.engine.manager.delivery("alice", webhook.id, d.id);
      expect(one.payload).toMatchObject({ event: "memory.created", user_id: "alice" });
    }
  });

  it("refuses bad webhook input with the code and field the API answers, and writes nothing", async () => {
    const t = await setup();
    const u = "http://127.0.0.1:8080/";
    // The codes are the API's problem types: invalid_field and unknown_event_type are 422, as over HTTP.
    const bad: Array<[Record<string, unknown>, string, string]> = [
      [{ url: "http://10.0.0.1/", events: ["*"] }, "invalid_url", "url"],
      [{ url: "http://[::1]:8080/", events: ["*"] }, "invalid_url", "url"],
      [{ url: "http://169.254.169.254/latest", events: ["*"] }, "invalid_url", "url"],
      [{ url: "ftp://example.com/", events: ["*"] }, "invalid_url", "url"],
      [{ events: ["*"] }, "invalid_field", "url"],
      [{ url: `${u}${"x".repeat(2100)}`, events: ["*"] }, "invalid_field", "url"],
      [{ url: u }, "invalid_field", "events"],
      [{ url: u, events: [] }, "invalid_field", "events"],
      [{ url: u, events: ["*", "memory.exploded"] }, "unknown_event_type", "events[1]"],
      [{ url: u, events: [5] }, "unknown_event_type", "events[0]"],
      [{ url: u, events: ["*"], name: "x".repeat(101) }, "invalid_field", "name"],
      [{ url: u, events: ["*"], description: "x".repeat(501) }, "invalid_field", "description"],
      [{ url: u, events: ["*"], metadata: [] }, "invalid_field", "metadata"],
      [{ url: u, events: ["*"], metadata: { b: "é".repeat(2100) } }, "invalid_field", "metadata"],
      [{ url: u, events: ["*"], retry_schedule: ["soon"] }, "invalid_field", "retry_schedule[0]"],
      [{ url: u, events: ["*"], retry_schedule: ["1s", "25h"] }, "invalid_field", "retry_schedule[1]"],
      [{ url: u, events: ["*"], retry_schedule: [] }, "invalid_field", "retry_schedule"],
      [{ url: u, events: ["*"], active: "yes" }, "invalid_field", "active"],
    ];
    for (const [input, code, field] of bad) {
      await expect(
        t.engine.manager.create("alice", input as never),
        JSON.stringify(input).slice(0, 80),
      ).rejects.toMatchObject({ code, field });
    }
    await expect(t.engine.manager.create("alice", null as never)).rejects.toMatchObject({
      code: "invalid_request",
    });
    // The owner follows the emitter's rule for user ids, as the API's acting user does.
    for (const userId of ["", "bad\nuser", "x".repeat(256), 7 as unknown as string]) {
      await expect(t.engine.manager.create(userId, { url: u, events: ["*"] })).rejects.toMatchObject({
        code: "invalid_field",
        field: "user_id",
      });
    }
    expect((await t.engine.manager.list(undefined, {})).data).toEqual([]);
  });

  it("suggests the event type a typo meant, and counts name lengths in characters", async () => {
    const t = await setup();
    const err = await t.engine.manager
      .create("alice", { url: "http://127.0.0.1:8080/", events: ["memory.craeted"] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagerError);
    expect((err as Error).message).toMatch(/did you mean memory\.created\?; valid types: memory\.created, /);
    // 100 emoji are 100 characters, as the API document's maxLength counts them.
    const { webhook } = await t.engine.manager.create("alice", {
      url: "http://127.0.0.1:8080/",
      events: ["*"],
      name: "🦊".repeat(100),
    });
    expect(webhook.name).toBe("🦊".repeat(100));
  });

  it("refuses an update that changes nothing, and list limits out of range", async () => {
    const t = await setup();
    const { webhook } = await t.engine.manager.create("alice", {
      url: "http://127.0.0.1:8080/",
      events: ["*"],
    });
    await expect(t.engine.manager.update("alice", webhook.id, {})).rejects.toMatchObject({
      code: "invalid_field",
      field: "body",
    });
    await expect(t.engine.manager.list("alice", { limit: 0 })).rejects.toMatchObject({
      code: "invalid_field",
      field: "limit",
    });
    await expect(t.engine.manager.list("alice", { cursor: "x".repeat(101) })).rejects.toMatchObject({
      code: "invalid_cursor",
    });
  });
});
