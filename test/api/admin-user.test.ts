/**
 * An admin key has no user of its own (CONTRACT §6): creating or emitting without `user_id` is
 * refused with 422 naming the field and writes nothing, instead of acting for a user called
 * "admin"; listing without `user_id` lists everyone's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, startApi, type TestApi } from "./helpers.js";

let api: TestApi;
const URL = "http://127.0.0.1:8080/admin-user";
const event = { event: "memory.created", data: {} };

beforeAll(async () => {
  api = await startApi({ rateLimit: false });
  for (const user of ["alice", "bob"] as const) {
    await api.call(api.keys[user], {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: { url: `${URL}/${user}`, events: ["*"] },
    });
  }
});
afterAll(async () => {
  await api?.cleanup();
});

const asAdmin = (method: "GET" | "POST", url: string, payload?: unknown) =>
  api.call(api.keys.admin, { method, url, ...(payload === undefined ? {} : { payload: payload as object }) });

describe("an admin key without user_id", () => {
  it("cannot create a webhook: 422 naming user_id, and nothing is written", async () => {
    const before = await api.counts();
    const res = await asAdmin("POST", "/api/v1/webhooks", { url: `${URL}/none`, events: ["*"] });
    expect(res.statusCode).toBe(422);
    expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(json(res)).toMatchObject({
      type: "https://continuum-webhooks.dev/problems/invalid_field",
      detail: "an admin key acts for no user of its own: name the user in user_id",
      errors: [{ field: "user_id", reason: "is required with an admin key" }],
    });
    expect(await api.counts()).toEqual(before);
    const admins = await api.store.db
      .selectFrom("webhooks")
      .select("id")
      .where("user_id", "=", "admin")
      .execute();
    expect(admins).toEqual([]);
  });

  it("cannot emit: 422 naming user_id, and nothing is written", async () => {
    const before = await api.counts();
    const res = await asAdmin("POST", "/api/v1/events", event);
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ errors: [{ field: "user_id" }] });
    expect(await api.counts()).toEqual(before);
  });

  it("cannot emit a batch in which one event lacks it: 422 naming events[3].user_id, nothing written", async () => {
    const before = await api.counts();
    const events = [0, 1, 2, 3, 4].map((i) => (i === 3 ? event : { ...event, user_id: "alice" }));
    const res = await asAdmin("POST", "/api/v1/events/batch", { events });
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ errors: [{ field: "events[3].user_id" }] });
    expect(await api.counts()).toEqual(before);
  });

  it("lists everyone's webhooks; with user_id, that user's", async () => {
    const all = json<{ data: Array<{ user_id: string }> }>(await asAdmin("GET", "/api/v1/webhooks"));
    expect(all.data.map((w) => w.user_id).sort()).toEqual(["alice", "bob"]);
    const bobs = json<{ data: Array<{ user_id: string }> }>(
      await asAdmin("GET", "/api/v1/webhooks?user_id=bob"),
    );
    expect(bobs.data.map((w) => w.user_id)).toEqual(["bob"]);
  });
});

describe("an admin key with user_id", () => {
  it("creates and emits for that user", async () => {
    const created = await asAdmin("POST", "/api/v1/webhooks", {
      url: `${URL}/for-bob`,
      events: ["*"],
      user_id: "bob",
    });
    expect(created.statusCode).toBe(201);
    expect(json(created)).toMatchObject({ user_id: "bob" });
    const emitted = await asAdmin("POST", "/api/v1/events", { ...event, user_id: "bob" });
    expect(emitted.statusCode).toBe(202);
    // bob now has two webhooks subscribed to everything.
    expect(json(emitted)).toMatchObject({ deliveries: 2 });
  });
});

describe("a user key", () => {
  it("still acts for its own user without user_id", async () => {
    const res = await api.call(api.keys.alice, { method: "POST", url: "/api/v1/events", payload: event });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ deliveries: 1 });
  });
});
