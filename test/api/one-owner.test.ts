/**
 * One owner per rule: a mistake made through the library (WebhookManager, Emitter) and the same
 * mistake sent to the API answer the same status, problem type and field, because the API
 * answers what the library says (src/api/validation.ts leaves the library's rules to it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { domainProblem, type Problem } from "../../src/api/errors.js";
import type { EmitOptions } from "../../src/emitter.js";
import { json, startApi, type TestApi } from "./helpers.js";

let api: TestApi;
let hookId: string;
const URL = "http://127.0.0.1:8080/owner";

beforeAll(async () => {
  api = await startApi({ rateLimit: false });
  const res = await api.call(api.keys.alice, {
    method: "POST",
    url: "/api/v1/webhooks",
    payload: { url: URL, events: ["*"] },
  });
  hookId = json<{ id: string }>(res).id;
});
afterAll(async () => {
  await api?.cleanup();
});

type Outcome = { status: number; type: string; field: string | undefined } | { status: "accepted" };

function fromProblem(p: Problem): Outcome {
  return { status: p.status, type: p.type.split("/").pop()!, field: p.errors?.[0]?.field };
}

/** What the library's refusal becomes as a problem (the API's own mapping), or "accepted". */
async function library(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    await run();
    return { status: "accepted" };
  } catch (err) {
    const p = domainProblem(err);
    if (!p) throw err;
    return fromProblem(p);
  }
}

async function http(
  method: "POST" | "PATCH" | "GET",
  url: string,
  payload?: Record<string, unknown>,
): Promise<Outcome> {
  const res = await api.call(api.keys.alice, { method, url, ...(payload ? { payload } : {}) });
  if (res.statusCode < 300) return { status: "accepted" };
  return fromProblem(json<Problem>(res));
}

const long = (n: number) => "x".repeat(n);
const counts = () => api.counts();

describe("webhook input: the manager and POST/PATCH /webhooks agree", () => {
  const cases: Array<[string, Record<string, unknown>, Outcome["status"]]> = [
    ["an unknown event type", { events: ["memory.craeted"] }, 422],
    ["an event type that is not a string", { events: [5] }, 422],
    ["no event types", { events: [] }, 422],
    ["21 event types", { events: Array.from({ length: 21 }, () => "*") }, 422],
    ["a url over 2048 characters", { url: `${URL}/${long(2100)}` }, 422],
    ["a url that is a number", { url: 42 }, 422],
    ["a private url", { url: "http://10.0.0.1/" }, 422],
    ["a name over 100 characters", { name: long(101) }, 422],
    // JSON Schema counts code points: 100 emoji are 100 characters (200 UTF-16 units).
    ["a name of 100 emoji", { name: "🦊".repeat(100) }, "accepted"],
    ["a description over 500 characters", { description: long(501) }, 422],
    ["metadata that is an array", { metadata: [1] }, 422],
    ["metadata over 4096 bytes", { metadata: { b: long(4100) } }, 422],
    // 1400 × "é" is 1400 characters but 2800 bytes, under the limit; 2100 are 4200 bytes.
    ["metadata of 2800 bytes in 1400 characters", { metadata: { b: "é".repeat(1400) } }, "accepted"],
    ["metadata of 4200 bytes in 2100 characters", { metadata: { b: "é".repeat(2100) } }, 422],
    ["an empty retry schedule", { retry_schedule: [] }, 422],
    ["a retry delay that is no duration", { retry_schedule: ["soon"] }, 422],
    ["a retry delay over 24h", { retry_schedule: ["1s", "25h"] }, 422],
    ["a negative retry delay", { retry_schedule: [-1] }, 422],
    ["a fractional millisecond delay", { retry_schedule: [1.5] }, 422],
    ["21 retry delays", { retry_schedule: Array.from({ length: 21 }, () => "1s") }, 422],
    ["active as a string", { active: "yes" }, 422],
  ];

  it.each(cases)("create with %s", async (_name, fields, expected) => {
    // A different URL each time, so that an accepted case does not collide with the next.
    const input = { url: `${URL}/${Math.random().toString(36).slice(2)}`, events: ["*"], ...fields };
    const before = await counts();
    const lib = await library(() => api.te.engine.manager.create("alice", input as never));
    const afterLibrary = await counts();
    const viaHttp = await http("POST", "/api/v1/webhooks", {
      ...input,
      url: typeof input.url === "string" ? `${input.url}-http` : input.url,
    });
    expect(viaHttp).toEqual(lib);
    expect(lib.status).toBe(expected);
    if (expected !== "accepted") {
      expect(afterLibrary).toEqual(before);
      expect(await counts()).toEqual(before);
    }
  });

  it.each(cases.filter(([, , expected]) => expected !== "accepted"))(
    "update with %s",
    async (_name, fields) => {
      const before = await api.store.db.selectFrom("webhooks").selectAll().execute();
      const lib = await library(() => api.te.engine.manager.update("alice", hookId, fields as never));
      const viaHttp = await http("PATCH", `/api/v1/webhooks/${hookId}`, fields);
      expect(viaHttp).toEqual(lib);
      expect(await api.store.db.selectFrom("webhooks").selectAll().execute()).toEqual(before);
    },
  );

  it("refuses an update that changes nothing, from both", async () => {
    const lib = await library(() => api.te.engine.manager.update("alice", hookId, {}));
    expect(lib).toEqual({ status: 422, type: "invalid_field", field: "body" });
    expect(await http("PATCH", `/api/v1/webhooks/${hookId}`, {})).toEqual(lib);
  });

  it("names the entry and suggests the type for a subscription typo, from both", async () => {
    const input = { url: `${URL}/typo`, events: ["memory.created", "memory.craeted"] };
    const err = await api.te.engine.manager.create("alice", input).catch((e: unknown) => e);
    const res = await api.call(api.keys.alice, { method: "POST", url: "/api/v1/webhooks", payload: input });
    const viaHttp = json<Problem>(res);
    expect(viaHttp).toEqual(domainProblem(err));
    expect(viaHttp.errors).toEqual([
      { field: "events[1]", reason: expect.stringContaining("did you mean memory.created?") },
    ]);
  });
});

describe("listing: the manager and GET agree", () => {
  const cases: Array<[string, string, number]> = [
    ["limit 0", "limit=0", 422],
    ["limit 101", "limit=101", 422],
    ["a cursor it did not issue", "cursor=bm90LWFuLWlk", 400],
    ["a cursor of 101 characters", `cursor=${long(101)}`, 400],
  ];
  it.each(cases)("webhooks with %s", async (_name, query) => {
    const q = Object.fromEntries(new URLSearchParams(query));
    const opts = {
      ...(q.limit ? { limit: Number(q.limit) } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    };
    const lib = await library(() => api.te.engine.manager.list("alice", opts));
    expect(await http("GET", `/api/v1/webhooks?${query}`)).toEqual(lib);
  });

  it("deliveries with an unknown status", async () => {
    const lib = await library(() =>
      api.te.engine.manager.deliveries("alice", hookId, { status: "lost" as never }),
    );
    expect(lib).toMatchObject({ status: 422, field: "status" });
    expect(await http("GET", `/api/v1/webhooks/${hookId}/deliveries?status=lost`)).toEqual(lib);
  });
});

describe("events: the emitter and POST /events and /events/batch agree", () => {
  const ok = { event: "memory.created", data: {} };
  const cases: Array<[string, Record<string, unknown>]> = [
    ["an unknown event type", { event: "memory.craeted" }],
    ["a webhook.test event", { event: "webhook.test" }],
    ["an event type over 64 characters", { event: long(65) }],
    ["an event type that is a number", { event: 7 }],
    ["no event type", { event: undefined }],
    ["no data", { data: undefined }],
    ["data that is an array", { data: [1] }],
    ["data over 256 KiB", { data: { b: long(300_000) } }],
    ["an unknown priority", { priority: "urgent" }],
    ["a priority that is a prototype key", { priority: "toString" }],
    ["an empty user id", { user_id: "" }],
    ["a user id with a C1 control character", { user_id: "al\u0085ice" }],
    ["an idempotency key over 255 characters", { idempotency_key: long(256) }],
  ];

  /** The body's fields as the library's EmitOptions (camelCase). */
  function options(body: Record<string, unknown>): EmitOptions {
    return {
      userId: (body.user_id === undefined ? "alice" : body.user_id) as string,
      data: body.data as Record<string, unknown>,
      ...(body.priority === undefined ? {} : { priority: body.priority as never }),
      ...(body.idempotency_key === undefined ? {} : { idempotencyKey: body.idempotency_key as string }),
    };
  }
  const strip = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

  it.each(cases)("with %s", async (_name, fields) => {
    const body = strip({ ...ok, ...fields });
    const before = await counts();
    const { emitter } = api.te.engine;
    const lib = await library(() => emitter.emit(body.event as string, options(body)));
    if (lib.status === "accepted") throw new Error("every case here is a mistake");
    expect(lib.status).toBe(422);
    expect(await http("POST", "/api/v1/events", body)).toEqual(lib);

    // In a batch, at index 1 (and at index 0 of a batch of one): the same, at events[i].
    const inBatch = await library(() =>
      emitter.emitBatch([
        { event: "memory.created", ...options(ok) },
        { event: body.event as string, ...options(body) },
      ]),
    );
    expect(inBatch).toEqual({ ...lib, field: `events[1].${lib.field}` });
    expect(await http("POST", "/api/v1/events/batch", { events: [ok, body] })).toEqual(inBatch);
    const alone = await library(() => emitter.emitBatch([{ event: body.event as string, ...options(body) }]));
    expect(alone).toEqual({ ...lib, field: `events[0].${lib.field}` });
    expect(await http("POST", "/api/v1/events/batch", { events: [body] })).toEqual(alone);
    expect(await counts()).toEqual(before);
  });

  it.each([
    ["no events", []],
    ["1001 events", Array.from({ length: 1001 }, () => ok)],
  ])("a batch of %s", async (_name, events) => {
    const lib = await library(() =>
      api.te.engine.emitter.emitBatch(
        (events as Array<typeof ok>).map((e) => ({ event: e.event, userId: "alice", data: e.data })),
      ),
    );
    expect(lib).toEqual({ status: 422, type: "invalid_field", field: "events" });
    expect(await http("POST", "/api/v1/events/batch", { events })).toEqual(lib);
  });
});
