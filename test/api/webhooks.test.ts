import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { hookBody, json, startApi, type TestApi } from "./helpers.js";

type Webhook = Record<string, unknown> & { id: string; secret: string };
const PROBLEM = /^application\/problem\+json/;

let rx: Receiver;
beforeAll(async () => {
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
});

let api: TestApi;
beforeEach(async () => {
  api = await startApi();
  rx.setReply({ status: 200 });
  rx.clear();
});
afterEach(async () => {
  await api.cleanup();
});

async function create(key: string, body: Record<string, unknown>): Promise<Webhook> {
  const res = await api.call(key, { method: "POST", url: "/api/v1/webhooks", payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return json<Webhook>(res);
}

describe("POST /api/v1/webhooks", () => {
  it("creates: 201, Location, every field snake_case, the whole secret this once", async () => {
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, {
        events: ["memory.created", "sync.failed"],
        name: "prod",
        description: "main receiver",
        metadata: { team: "core" },
        retry_schedule: ["1s", "5m"],
      }),
    });
    expect(res.statusCode).toBe(201);
    const hook = json<Webhook>(res);
    expect(res.headers.location).toBe(`/api/v1/webhooks/${hook.id}`);
    expect(hook).toMatchObject({
      user_id: "alice",
      url: `http://127.0.0.1:${rx.port}/hook`,
      events: ["memory.created", "sync.failed"],
      active: true,
      name: "prod",
      description: "main receiver",
      metadata: { team: "core" },
      retry_schedule: ["1s", "5m"],
      failure_count: 0,
      circuit_breaker: { state: "closed", opened_at: null },
    });
    expect(hook.id).toMatch(/^whk_[0-9A-Z]{26}$/);
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const stored = await api.store.db.selectFrom("webhooks").select("secret").executeTakeFirstOrThrow();
    expect(stored.secret).toBe(hook.secret);

    // Everywhere else the secret is masked.
    const got = json<Webhook>(
      await api.call(api.keys.alice, { method: "GET", url: `/api/v1/webhooks/${hook.id}` }),
    );
    expect(got.secret).not.toBe(hook.secret);
    expect(got.secret).toMatch(/^whsec_.{4}…$/);
    expect({ ...got, secret: hook.secret, updated_at: hook.updated_at }).toEqual(hook);
  });

  it("answers 409 for a second webhook on the same URL of the same user, but not another user's", async () => {
    await create(api.keys.alice, hookBody(rx.port));
    const again = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port),
    });
    expect(again.statusCode).toBe(409);
    expect(again.headers["content-type"]).toMatch(PROBLEM);
    expect(json(again)).toMatchObject({ status: 409, errors: [{ field: "url" }] });
    await create(api.keys.bob, hookBody(rx.port));
  });

  it("refuses a URL the SSRF rules deny with 422 and the reason", async () => {
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: { url: "http://169.254.169.254/latest/meta-data/", events: ["*"] },
    });
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({
      type: "https://continuum-webhooks.dev/problems/invalid_url",
      errors: [{ field: "url" }],
    });
    expect(String(json(res).detail)).toMatch(/denied|not allowed|metadata|link-local/i);
  });

  it("refuses unknown event types with 422 naming the entry", async () => {
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, { events: ["memory.created", "memory.exploded"] }),
    });
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ errors: [{ field: "events[1]" }] });
  });

  it("lets an admin create for a user, and refuses a user key naming someone else (403)", async () => {
    const hook = await create(api.keys.admin, hookBody(rx.port, { user_id: "bob" }));
    expect(hook.user_id).toBe("bob");
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, { user_id: "bob" }),
    });
    expect(res.statusCode).toBe(403);
    expect(json(res)).toMatchObject({ errors: [{ field: "user_id" }] });
    const sameUser = await create(api.keys.alice, hookBody(rx.port, { user_id: "alice" }));
    expect(sameUser.user_id).toBe("alice");
  });
});

describe("GET /api/v1/webhooks", () => {
  it("pages with an opaque cursor until next_cursor is null, oldest first, stable under inserts", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (await create(api.keys.alice, hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/${i}` }))).id,
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/v1/webhooks?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await api.call(api.keys.alice, { method: "GET", url });
      expect(res.statusCode).toBe(200);
      const page = json<{ data: Webhook[]; next_cursor: string | null }>(res);
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((w) => w.id));
      for (const w of page.data) expect(w.secret).toMatch(/…$/);
      cursor = page.next_cursor;
      if (pages === 0) {
        // A webhook created mid-listing shows up at the end, never as a duplicate or a gap.
        ids.push(
          (await create(api.keys.alice, hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/late` }))).id,
        );
      }
      pages++;
    } while (cursor !== null);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);
  });

  it("defaults to 20 per page", async () => {
    for (let i = 0; i < 21; i++)
      await create(api.keys.alice, hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/${i}` }));
    const page = json<{ data: unknown[]; next_cursor: string | null }>(
      await api.call(api.keys.alice, { method: "GET", url: "/api/v1/webhooks" }),
    );
    expect(page.data).toHaveLength(20);
    expect(page.next_cursor).not.toBeNull();
  });

  it("answers 400 for a cursor it did not issue", async () => {
    const res = await api.call(api.keys.alice, {
      method: "GET",
      url: "/api/v1/webhooks?cursor=bm90LWFuLWlk",
    });
    expect(res.statusCode).toBe(400);
    expect(json(res)).toMatchObject({ type: "https://continuum-webhooks.dev/problems/invalid_cursor" });
  });
});

describe("GET/PATCH/DELETE /api/v1/webhooks/{id}", () => {
  it("updates only the fields sent, re-validates the url, toggles active", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port, { name: "a" }));
    const url = `/api/v1/webhooks/${hook.id}`;
    const res = await api.call(api.keys.alice, {
      method: "PATCH",
      url,
      payload: { active: false, description: "paused" },
    });
    expect(res.statusCode).toBe(200);
    expect(json(res)).toMatchObject({
      active: false,
      description: "paused",
      name: "a",
      events: ["memory.created"],
    });

    const refused = await api.call(api.keys.alice, {
      method: "PATCH",
      url,
      payload: { url: "http://10.1.2.3/" },
    });
    expect(refused.statusCode).toBe(422);
    const cleared = await api.call(api.keys.alice, {
      method: "PATCH",
      url,
      payload: { name: null, active: true },
    });
    expect(json(cleared)).toMatchObject({ name: null, active: true, url: hook.url });
  });

  it("answers 409 when an update would duplicate another webhook's URL", async () => {
    await create(api.keys.alice, hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/one` }));
    const two = await create(api.keys.alice, hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/two` }));
    const res = await api.call(api.keys.alice, {
      method: "PATCH",
      url: `/api/v1/webhooks/${two.id}`,
      payload: { url: `http://127.0.0.1:${rx.port}/one` },
    });
    expect(res.statusCode).toBe(409);
  });

  it("deletes with 204 and its deliveries with it; then 404", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port));
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "memory.created", data: {} },
    });
    expect((await api.counts()).deliveries).toBe(1);
    const res = await api.call(api.keys.alice, { method: "DELETE", url: `/api/v1/webhooks/${hook.id}` });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe("");
    expect(await api.counts()).toMatchObject({ webhooks: 0, deliveries: 0 });
    for (const method of ["GET", "DELETE"] as const) {
      const gone = await api.call(api.keys.alice, { method, url: `/api/v1/webhooks/${hook.id}` });
      expect(gone.statusCode).toBe(404);
      expect(gone.headers["content-type"]).toMatch(PROBLEM);
    }
  });
});

describe("POST /api/v1/webhooks/{id}/test", () => {
  it("sends a signed webhook.test now and reports the outcome", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port));
    const res = await api.call(api.keys.alice, { method: "POST", url: `/api/v1/webhooks/${hook.id}/test` });
    expect(res.statusCode).toBe(200);
    const out = json<{
      delivery_id: string;
      success: boolean;
      status_code: number;
      duration_ms: number;
      error: null;
    }>(res);
    expect(out).toMatchObject({ success: true, status_code: 200, error: null });
    expect(out.delivery_id).toMatch(/^dlv_/);
    expect(rx.requests).toHaveLength(1);
    expect(rx.requests[0]!.headers["x-continuum-event"]).toBe("webhook.test");
    expect(rx.requests[0]!.headers["x-continuum-delivery"]).toBe(out.delivery_id);
  });

  it("reports a failing endpoint as success: false with its status code", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port));
    rx.setReply({ status: 500, body: "boom" });
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: `/api/v1/webhooks/${hook.id}/test`,
      // Clients often send a JSON content type with no body: that is no body, not bad JSON.
      headers: { "content-type": "application/json" },
    });
    expect(res.statusCode).toBe(200);
    expect(json(res)).toMatchObject({ success: false, status_code: 500 });
  });
});

describe("POST /api/v1/webhooks/{id}/rotate-secret", () => {
  it("returns the new secret whole once and keeps the old one valid for 24 h", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port));
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: `/api/v1/webhooks/${hook.id}/rotate-secret`,
    });
    expect(res.statusCode).toBe(200);
    const rotated = json<Webhook & { previous_secret_expires_at: string }>(res);
    expect(rotated.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(rotated.secret).not.toBe(hook.secret);
    const hours = (Date.parse(rotated.previous_secret_expires_at) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
    const row = await api.store.db
      .selectFrom("webhooks")
      .select(["secret", "previous_secret"])
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ secret: rotated.secret, previous_secret: hook.secret });
    // Both secrets sign the next delivery.
    await api.call(api.keys.alice, { method: "POST", url: `/api/v1/webhooks/${hook.id}/test` });
    expect(String(rx.requests[0]!.headers["x-continuum-signature"]).split(" ")).toHaveLength(2);
  });
});

describe("GET /api/v1/webhooks/{id}/stats", () => {
  it("counts deliveries by status, with success rate and durations per window", async () => {
    const hook = await create(api.keys.alice, hookBody(rx.port));
    const test = `/api/v1/webhooks/${hook.id}/test`;
    await api.call(api.keys.alice, { method: "POST", url: test });
    rx.setReply({ status: 503 });
    await api.call(api.keys.alice, { method: "POST", url: test });
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "memory.created", data: {} },
    });
    const res = await api.call(api.keys.alice, { method: "GET", url: `/api/v1/webhooks/${hook.id}/stats` });
    expect(res.statusCode).toBe(200);
    const stats =
      json<Record<string, { total: number; success_rate: number; duration_ms: { p95: number } }>>(res);
    expect(stats).toMatchObject({
      webhook_id: hook.id,
      all_time: {
        total: 3,
        by_status: { pending: 1, success: 1, failed: 1, dead_letter: 0 },
        success_rate: 0.5,
      },
      last_24h: { total: 3 },
      last_7d: { total: 3 },
    });
    expect(typeof stats.all_time!.duration_ms.p95).toBe("number");
  });
});
