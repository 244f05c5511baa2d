/**
 * Every malformed request is a 4xx problem+json that writes nothing, and none of them reaches the
 * catch-all 500 handler (which would log at error level).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { hookBody, json, startApi, type TestApi } from "./helpers.js";
import { EV, validEvent, WEBHOOK_CASES, WH } from "./malformed-cases.js";
import { EVENT_CASES } from "./malformed-cases-events.js";

const CASES = [...WEBHOOK_CASES, ...EVENT_CASES];

let rx: Receiver;
let api: TestApi;
const ids = { hook: "", delivery: "", hookCursor: "" };

beforeAll(async () => {
  rx = await startReceiver();
  api = await startApi({ rateLimit: false });
  const created = await api.call(api.keys.alice, {
    method: "POST",
    url: WH,
    payload: hookBody(rx.port, { events: ["*"] }),
  });
  ids.hook = json<{ id: string }>(created).id;
  ids.hookCursor = Buffer.from(ids.hook).toString("base64url");
  const test = await api.call(api.keys.alice, { method: "POST", url: `${WH}/${ids.hook}/test` });
  ids.delivery = json<{ delivery_id: string }>(test).delivery_id;
  await api.call(api.keys.alice, { method: "POST", url: EV, payload: validEvent });
});

afterAll(async () => {
  await api?.cleanup();
  await rx?.close();
});

describe("malformed requests", () => {
  it("has at least 60 cases, each named once", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it.each(CASES)("$name → $status", async (c) => {
    const url = c.url
      .replace("$HOOKCURSOR", ids.hookCursor)
      .replace("$HOOK", ids.hook)
      .replace("$DLV", ids.delivery);
    const headers: Record<string, string> = { ...c.headers };
    const auth = c.auth ?? "alice";
    if (typeof auth === "object") headers.authorization = auth.header;
    else if (auth !== "none") headers.authorization = `Bearer ${api.keys[auth]}`;
    let payload: string | Buffer | undefined;
    if (c.body !== undefined) {
      payload =
        typeof c.body === "string" || Buffer.isBuffer(c.body) ? (c.body as string) : JSON.stringify(c.body);
      headers["content-type"] = c.contentType ?? "application/json";
    }
    const before = await api.counts();
    const secretsBefore = await api.store.db
      .selectFrom("webhooks")
      .select(["id", "secret", "url", "active"])
      .execute();

    const res = await api.app.inject({
      method: c.method,
      url,
      headers,
      ...(payload === undefined ? {} : { payload }),
    });

    expect(res.statusCode, res.body.slice(0, 300)).toBe(c.status);
    expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    const p = json<{
      type: string;
      title: string;
      status: number;
      detail: string;
      errors?: Array<{ field: string }>;
    }>(res);
    expect(p.status).toBe(c.status);
    expect(p.type).toMatch(/^https:\/\/continuum-webhooks\.dev\/problems\/[a-z_]+$/);
    expect(typeof p.title).toBe("string");
    expect(p.detail.length).toBeGreaterThan(0);
    if (c.type) expect(p.type.split("/").pop()).toBe(c.type);
    if (c.field) expect(p.errors?.map((e) => e.field)).toContain(c.field);
    if (c.detail) expect(p.detail).toMatch(c.detail);
    // A schema's regex explains nothing to whoever reads the problem.
    expect(res.body).not.toMatch(/\^(whk|dlv|evt)_|\[0-9A-HJKMNP/);
    if (c.status === 401) expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
    if (c.status === 405) expect(res.headers.allow).toBeTruthy();
    // Keys are never echoed back.
    for (const key of Object.values(api.keys)) expect(res.body).not.toContain(key);

    expect(await api.counts()).toEqual(before);
    expect(
      await api.store.db.selectFrom("webhooks").select(["id", "secret", "url", "active"]).execute(),
    ).toEqual(secretsBefore);
  });

  it("never reached the catch-all handler", () => {
    expect(api.errors()).toEqual([]);
  });
});
