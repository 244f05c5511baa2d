import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { hookBody, json, startApi, type TestApi } from "./helpers.js";

type Delivery = Record<string, unknown> & { id: string; status: string; created_at: string };
type Page = { data: Delivery[]; next_cursor: string | null };

let rx: Receiver;
beforeAll(async () => {
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
});

let api: TestApi;
let hookId: string;
beforeEach(async () => {
  api = await startApi();
  rx.setReply({ status: 200 });
  rx.clear();
  const res = await api.call(api.keys.alice, {
    method: "POST",
    url: "/api/v1/webhooks",
    payload: hookBody(rx.port, { events: ["memory.created", "sync.failed"] }),
  });
  hookId = json<{ id: string }>(res).id;
});
afterEach(async () => {
  await api.cleanup();
});

function emit(key: string, payload: unknown, headers: Record<string, string> = {}) {
  return api.call(key, {
    method: "POST",
    url: "/api/v1/events",
    payload: payload as Record<string, unknown>,
    headers,
  });
}

describe("POST /api/v1/events", () => {
  it("answers 202 {id, deliveries} after writing the event and one delivery per subscribed webhook", async () => {
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/second`, events: ["*"] }),
    });
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/other`, events: ["quota.warning"] }),
    });
    const res = await emit(api.keys.alice, { event: "memory.created", data: { memory_id: "m1" } });
    expect(res.statusCode).toBe(202);
    const body = json<{ id: string; deliveries: number; duplicate: boolean }>(res);
    expect(body).toEqual({
      id: expect.stringMatching(/^evt_[0-9A-Z]{26}$/),
      deliveries: 2,
      duplicate: false,
    });
    expect(res.headers["idempotent-replayed"]).toBeUndefined();
    expect(await api.counts()).toMatchObject({ events: 1, deliveries: 2 });
    // The payload is stored once, on the event; the deliveries point at it.
    const rows = await api.store.db
      .selectFrom("webhook_deliveries as d")
      .innerJoin("webhook_events as e", "e.id", "d.event_id")
      .select(["d.payload as own", "e.payload as payload", "d.priority"])
      .execute();
    expect(rows.map((r) => r.own)).toEqual([null, null]);
    const row = rows[0]!;
    expect(JSON.parse(row.payload)).toMatchObject({
      id: body.id,
      event: "memory.created",
      user_id: "alice",
      data: { memory_id: "m1" },
    });
  });

  it("replays an idempotency key (body or header) without writing anything", async () => {
    const first = json(
      await emit(api.keys.alice, { event: "memory.created", data: {}, idempotency_key: "k-1" }),
    );
    const again = await emit(
      api.keys.alice,
      { event: "memory.created", data: {} },
      { "idempotency-key": "k-1" },
    );
    expect(again.statusCode).toBe(202);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(json(again)).toEqual({ ...first, duplicate: true });
    expect(await api.counts()).toMatchObject({ events: 1, deliveries: 1 });
    // The same key for another user is another event.
    await emit(api.keys.admin, { event: "memory.created", user_id: "bob", data: {}, idempotency_key: "k-1" });
    expect((await api.counts()).events).toBe(2);
  });

  it("refuses a header and body idempotency key that disagree", async () => {
    const res = await emit(
      api.keys.alice,
      { event: "memory.created", data: {}, idempotency_key: "a" },
      { "idempotency-key": "b" },
    );
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ errors: [{ field: "idempotency_key" }] });
  });

  it("lets an admin emit for any user and a user key only for itself", async () => {
    const byAdmin = await emit(api.keys.admin, { event: "memory.created", user_id: "alice", data: {} });
    expect(json(byAdmin)).toMatchObject({ deliveries: 1 });
    const forSelf = await emit(api.keys.alice, { event: "memory.created", user_id: "alice", data: {} });
    expect(json(forSelf)).toMatchObject({ deliveries: 1 });
    const forOther = await emit(api.keys.bob, { event: "memory.created", user_id: "alice", data: {} });
    expect(forOther.statusCode).toBe(403);
    expect(json(forOther)).toMatchObject({ detail: "a user key can only act for its own user" });
    expect(json(await emit(api.keys.bob, { event: "memory.created", data: {} }))).toMatchObject({
      deliveries: 0,
    });
  });

  it("honours an explicit priority", async () => {
    await emit(api.keys.alice, { event: "memory.created", data: {}, priority: "low" });
    const row = await api.store.db
      .selectFrom("webhook_deliveries")
      .select("priority")
      .executeTakeFirstOrThrow();
    expect(row.priority).toBe(2);
  });
});

describe("POST /api/v1/events/batch", () => {
  it("answers 202 with one result per event, in order", async () => {
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events/batch",
      payload: {
        events: [
          { event: "memory.created", data: { n: 1 } },
          { event: "session.started", data: { n: 2 } },
          { event: "sync.failed", data: { n: 3 }, idempotency_key: "s" },
        ],
      },
    });
    expect(res.statusCode).toBe(202);
    const { results } = json<{ results: Array<{ id: string; deliveries: number; duplicate: boolean }> }>(res);
    expect(results.map((r) => r.deliveries)).toEqual([1, 0, 1]);
    expect(new Set(results.map((r) => r.id)).size).toBe(3);
    expect(await api.counts()).toMatchObject({ events: 3, deliveries: 2 });
  });

  it("writes nothing when one event is refused, and names it", async () => {
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events/batch",
      payload: {
        events: [
          { event: "memory.created", data: {} },
          { event: "memory.imploded", data: {} },
        ],
      },
    });
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ errors: [{ field: "events[1].event" }] });
    expect(await api.counts()).toMatchObject({ events: 0, deliveries: 0 });
  });
});

describe("deliveries", () => {
  async function seed(): Promise<string[]> {
    // Two failed test deliveries and two pending ones, created in this order.
    rx.setReply({ status: 500 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push(
        json<{ delivery_id: string }>(
          await api.call(api.keys.alice, { method: "POST", url: `/api/v1/webhooks/${hookId}/test` }),
        ).delivery_id,
      );
    }
    await emit(api.keys.alice, { event: "memory.created", data: {} });
    await emit(api.keys.alice, { event: "sync.failed", data: {} });
    const rows = await api.store.db.selectFrom("webhook_deliveries").select("id").orderBy("id").execute();
    return rows.map((r) => r.id);
  }

  it("lists newest first with cursor pagination and filters", async () => {
    const ids = await seed();
    const base = `/api/v1/webhooks/${hookId}/deliveries`;
    const first = json<Page>(await api.call(api.keys.alice, { method: "GET", url: `${base}?limit=3` }));
    expect(first.data.map((d) => d.id)).toEqual([...ids].reverse().slice(0, 3));
    const second = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?limit=3&cursor=${first.next_cursor}` }),
    );
    expect(second.data.map((d) => d.id)).toEqual([ids[0]]);
    expect(second.next_cursor).toBeNull();

    const failed = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?status=failed` }),
    );
    expect(failed.data.map((d) => d.status)).toEqual(["failed", "failed"]);
    const syncs = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?event=sync.failed` }),
    );
    expect(syncs.data).toHaveLength(1);

    // Time bounds: a +02:00 offset means the same instant as its UTC form.
    const oldest = second.data[0]!.created_at;
    const shifted = new Date(Date.parse(oldest) + 2 * 3_600_000).toISOString().replace("Z", "+02:00");
    const since = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?since=${encodeURIComponent(shifted)}` }),
    );
    expect(since.data).toHaveLength(4);
    const future = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?since=2999-01-01T00:00:00Z` }),
    );
    expect(future.data).toEqual([]);
    const until = json<Page>(
      await api.call(api.keys.alice, { method: "GET", url: `${base}?until=2000-01-01T00:00:00Z` }),
    );
    expect(until.data).toEqual([]);
  });

  it("shows one delivery with its payload and every attempt", async () => {
    const [testId] = await seed();
    const res = await api.call(api.keys.alice, {
      method: "GET",
      url: `/api/v1/webhooks/${hookId}/deliveries/${testId}`,
    });
    expect(res.statusCode).toBe(200);
    const d = json<Delivery & { payload: Record<string, unknown>; attempt_history: unknown[] }>(res);
    expect(d).toMatchObject({
      id: testId,
      webhook_id: hookId,
      event: "webhook.test",
      status: "failed",
      attempts: 1,
    });
    expect(d.payload).toMatchObject({ event: "webhook.test", user_id: "alice" });
    expect(d.attempt_history).toEqual([
      expect.objectContaining({ attempt: 1, response_code: 500, error_type: "http_status" }),
    ]);
    const missing = await api.call(api.keys.alice, {
      method: "GET",
      url: `/api/v1/webhooks/${hookId}/deliveries/dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV`,
    });
    expect(missing.statusCode).toBe(404);
  });

  it("retries a finished delivery (202, pending again) and answers 409 while it is pending", async () => {
    const [testId, , pendingId] = await seed();
    const url = `/api/v1/webhooks/${hookId}/retry/${testId}`;
    const res = await api.call(api.keys.alice, { method: "POST", url });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ id: testId, status: "pending" });
    const row = await api.store.db
      .selectFrom("webhook_deliveries")
      .select("status")
      .where("id", "=", testId!)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe("pending");
    const twice = await api.call(api.keys.alice, { method: "POST", url });
    expect(twice.statusCode).toBe(409);
    const pending = await api.call(api.keys.alice, {
      method: "POST",
      url: `/api/v1/webhooks/${hookId}/retry/${pendingId}`,
    });
    expect(pending.statusCode).toBe(409);
    expect(json(pending)).toMatchObject({ type: "https://continuum-webhooks.dev/problems/conflict" });
  });
});

describe("retry, delivered for real", () => {
  it("the worker delivers a retried delivery again with the same delivery id", async () => {
    await api.cleanup();
    api = await startApi({ workers: true });
    const hook = json<{ id: string }>(
      await api.call(api.keys.alice, { method: "POST", url: "/api/v1/webhooks", payload: hookBody(rx.port) }),
    );
    rx.clear();
    const test = json<{ delivery_id: string; success: boolean }>(
      await api.call(api.keys.alice, { method: "POST", url: `/api/v1/webhooks/${hook.id}/test` }),
    );
    expect(test.success).toBe(true);
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: `/api/v1/webhooks/${hook.id}/retry/${test.delivery_id}`,
    });
    expect(res.statusCode).toBe(202);
    await rx.waitForRequests(2);
    expect(rx.requests.map((r) => r.headers["x-continuum-delivery"])).toEqual([
      test.delivery_id,
      test.delivery_id,
    ]);
  });
});
