/**
 * Tenant isolation: alice and bob each own a webhook with a delivery; every route is crossed.
 * A user key meets the other user's resources as 404 (never 403) and changes nothing; the admin
 * key reaches both.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { hookBody, json, startApi, type TestApi } from "./helpers.js";

let rx: Receiver;
let api: TestApi;
const own = { alice: { hook: "", delivery: "" }, bob: { hook: "", delivery: "" } };

async function snapshot() {
  return {
    webhooks: await api.store.db.selectFrom("webhooks").selectAll().orderBy("id").execute(),
    deliveries: await api.store.db.selectFrom("webhook_deliveries").selectAll().orderBy("id").execute(),
    counts: await api.counts(),
  };
}

beforeAll(async () => {
  rx = await startReceiver();
  api = await startApi({ rateLimit: false });
  for (const user of ["alice", "bob"] as const) {
    const res = await api.call(api.keys[user], {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(rx.port, { url: `http://127.0.0.1:${rx.port}/${user}`, events: ["*"] }),
    });
    own[user].hook = json<{ id: string }>(res).id;
    const test = await api.call(api.keys[user], {
      method: "POST",
      url: `/api/v1/webhooks/${own[user].hook}/test`,
    });
    own[user].delivery = json<{ delivery_id: string }>(test).delivery_id;
  }
});

afterAll(async () => {
  await api?.cleanup();
  await rx?.close();
});

beforeEach(() => rx.clear());

/** Every route that addresses a webhook (and a delivery), as `victim`'s resources. */
function routes(victim: { hook: string; delivery: string }) {
  const w = `/api/v1/webhooks/${victim.hook}`;
  return [
    { name: "read", method: "GET" as const, url: w },
    {
      name: "update",
      method: "PATCH" as const,
      url: w,
      payload: { active: false, url: "http://127.0.0.1:8080/stolen" },
    },
    { name: "delete", method: "DELETE" as const, url: w },
    { name: "test", method: "POST" as const, url: `${w}/test` },
    { name: "rotate", method: "POST" as const, url: `${w}/rotate-secret` },
    { name: "stats", method: "GET" as const, url: `${w}/stats` },
    { name: "deliveries", method: "GET" as const, url: `${w}/deliveries` },
    { name: "delivery detail", method: "GET" as const, url: `${w}/deliveries/${victim.delivery}` },
    { name: "retry", method: "POST" as const, url: `${w}/retry/${victim.delivery}` },
  ];
}

describe("a user key against another user's resources", () => {
  for (const [attacker, victim] of [
    ["bob", "alice"],
    ["alice", "bob"],
  ] as const) {
    for (const r of routes({ hook: "", delivery: "" })) {
      it(`${attacker} → ${victim}'s webhook: ${r.name} answers 404 and changes nothing`, async () => {
        const target = routes(own[victim]).find((x) => x.name === r.name)!;
        const before = await snapshot();
        const res = await api.call(api.keys[attacker], target);
        expect(res.statusCode).toBe(404);
        expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
        // The answer is the same as for an id that never existed.
        const ghost = await api.call(api.keys[attacker], {
          ...target,
          url: target.url.replace(own[victim].hook, "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        });
        expect(ghost.statusCode).toBe(404);
        expect(json(res).title).toBe(json(ghost).title);
        expect(await snapshot()).toEqual(before);
        expect(rx.requests).toHaveLength(0);
      });
    }
  }

  it("cannot reach its own webhook's routes with the other user's delivery id", async () => {
    const w = `/api/v1/webhooks/${own.bob.hook}`;
    const before = await snapshot();
    for (const [method, url] of [
      ["GET", `${w}/deliveries/${own.alice.delivery}`],
      ["POST", `${w}/retry/${own.alice.delivery}`],
    ] as const) {
      expect((await api.call(api.keys.bob, { method, url })).statusCode).toBe(404);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("lists only its own webhooks, and may not ask for another user's", async () => {
    const list = json<{ data: Array<{ id: string; user_id: string }> }>(
      await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks" }),
    );
    expect(list.data.map((w) => w.id)).toEqual([own.bob.hook]);
    const other = await api.call(api.keys.bob, { method: "GET", url: "/api/v1/webhooks?user_id=alice" });
    expect(other.statusCode).toBe(403);
  });

  it("emits only to its own webhooks, and may not emit for another user", async () => {
    const before = await snapshot();
    const res = await api.call(api.keys.bob, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "memory.created", user_id: "alice", data: {} },
    });
    expect(res.statusCode).toBe(403);
    expect(await snapshot()).toEqual(before);
    const mine = await api.call(api.keys.bob, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "memory.created", data: {} },
    });
    expect(json(mine)).toMatchObject({ deliveries: 1 });
    const rows = await api.store.db
      .selectFrom("webhook_deliveries")
      .select("webhook_id")
      .where("event", "=", "memory.created")
      .execute();
    expect(rows).toEqual([{ webhook_id: own.bob.hook }]);
  });
});

describe("the admin key", () => {
  it("reads, tests, rotates and reads stats and deliveries of any user's webhook", async () => {
    for (const user of ["alice", "bob"] as const) {
      const r = routes(own[user]);
      for (const name of ["read", "stats", "deliveries", "delivery detail", "test", "rotate"]) {
        const route = r.find((x) => x.name === name)!;
        const res = await api.call(api.keys.admin, route);
        expect(res.statusCode, `${name} ${user}`).toBe(200);
      }
      const detail = await api.call(api.keys.admin, r.find((x) => x.name === "delivery detail")!);
      expect(json(detail)).toMatchObject({ webhook_id: own[user].hook, payload: { user_id: user } });
    }
  });

  it("updates and retries any user's webhook", async () => {
    const patch = await api.call(api.keys.admin, {
      method: "PATCH",
      url: `/api/v1/webhooks/${own.alice.hook}`,
      payload: { name: "set by admin" },
    });
    expect(json(patch)).toMatchObject({ user_id: "alice", name: "set by admin" });
    const retry = await api.call(api.keys.admin, {
      method: "POST",
      url: `/api/v1/webhooks/${own.bob.hook}/retry/${own.bob.delivery}`,
    });
    expect(retry.statusCode).toBe(202);
  });

  it("lists everyone's, or one user's with user_id", async () => {
    const all = json<{ data: Array<{ id: string }> }>(
      await api.call(api.keys.admin, { method: "GET", url: "/api/v1/webhooks" }),
    );
    expect(all.data.map((w) => w.id).sort()).toEqual([own.alice.hook, own.bob.hook].sort());
    const alice = json<{ data: Array<{ id: string }> }>(
      await api.call(api.keys.admin, { method: "GET", url: "/api/v1/webhooks?user_id=alice" }),
    );
    expect(alice.data.map((w) => w.id)).toEqual([own.alice.hook]);
  });

  it("emits for any user, reaching only that user's webhooks", async () => {
    const res = await api.call(api.keys.admin, {
      method: "POST",
      url: "/api/v1/events",
      payload: { event: "session.started", user_id: "alice", data: {} },
    });
    expect(json(res)).toMatchObject({ deliveries: 1 });
    const rows = await api.store.db
      .selectFrom("webhook_deliveries")
      .select("webhook_id")
      .where("event", "=", "session.started")
      .execute();
    expect(rows).toEqual([{ webhook_id: own.alice.hook }]);
  });

  it("deletes any user's webhook (last: it removes the fixture)", async () => {
    const res = await api.call(api.keys.admin, { method: "DELETE", url: `/api/v1/webhooks/${own.bob.hook}` });
    expect(res.statusCode).toBe(204);
    expect(
      (await api.call(api.keys.bob, { method: "GET", url: `/api/v1/webhooks/${own.bob.hook}` })).statusCode,
    ).toBe(404);
  });
});
