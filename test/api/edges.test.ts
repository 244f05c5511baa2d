/**
 * Edges found by fuzzing from the OpenAPI document: trailing slashes, and text that is not
 * well-formed Unicode. (Refusals are in the malformed-case tables; these are the answers a
 * well-meaning client gets.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpsServer } from "../../src/api/server.js";
import { createLogger } from "../../src/logger.js";
import { json, startApi, type TestApi } from "./helpers.js";

let api: TestApi;
beforeAll(async () => {
  api = await startApi({ rateLimit: false });
});
afterAll(async () => {
  await api?.cleanup();
});

describe("a trailing slash", () => {
  it("names the same route as without one", async () => {
    const created = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks/",
      payload: { url: "http://127.0.0.1:8080/slash", events: ["*"] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const { id } = json<{ id: string }>(created);
    const patched = await api.call(api.keys.alice, {
      method: "PATCH",
      url: `/api/v1/webhooks/${id}/`,
      payload: { name: "slash" },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    const listed = await api.call(api.keys.alice, { method: "GET", url: "/api/v1/webhooks/?limit=5" });
    expect(json<{ data: unknown[] }>(listed).data).toHaveLength(1);
    const batch = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events/batch/",
      payload: { events: [{ event: "memory.created", data: {} }] },
    });
    expect(batch.statusCode, batch.body).toBe(202);
    expect(json(batch)).toMatchObject({ results: [{ deliveries: 1 }] });
    const health = await api.app.inject({ method: "GET", url: "/health/" });
    expect(health.statusCode, health.body).toBe(200);
  });
});

describe("a trailing slash on the worker's /health and /metrics", () => {
  it("names the same route there too", async () => {
    const ops = await buildOpsServer({
      store: api.store,
      engine: api.te.engine,
      logger: createLogger("silent"),
    });
    try {
      await ops.ready();
      expect((await ops.inject({ method: "GET", url: "/health/" })).statusCode).toBe(200);
      expect((await ops.inject({ method: "GET", url: "/metrics/" })).statusCode).toBe(200);
      const wrong = await ops.inject({ method: "POST", url: "/health/" });
      expect(wrong.statusCode).toBe(405);
      expect(wrong.headers.allow).toBe("GET, HEAD");
    } finally {
      await ops.close();
    }
  });
});

describe("Unicode text", () => {
  it("keeps a surrogate pair sent escaped (as Python's json.dumps does) and characters sent raw", async () => {
    const body =
      '{"url": "http://127.0.0.1:8080/fox", "events": ["*"], "name": "\\ud83e\\udd8a and 🦊", "description": "caf\\u00e9"}';
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      headers: { "content-type": "application/json" },
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(201);
    const { id } = json<{ id: string }>(res);
    const stored = await api.store.db
      .selectFrom("webhooks")
      .select(["name", "description"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ name: "🦊 and 🦊", description: "café" });
  });

  it("refuses a lone surrogate before anything is stored, naming the field", async () => {
    const before = await api.counts();
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/events",
      headers: { "content-type": "application/json" },
      payload: '{"event": "memory.created", "data": {"preview": "half \\ud83e of a fox"}}',
    });
    expect(res.statusCode).toBe(400);
    expect(json(res)).toMatchObject({
      type: "https://continuum-webhooks.dev/problems/invalid_json",
      errors: [{ field: "data.preview" }],
    });
    expect(await api.counts()).toEqual(before);
  });
});
