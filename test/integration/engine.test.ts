/**
 * The delivery engine end to end on the embedded SQLite store, against real receivers on
 * 127.0.0.1. Retry schedules run on a manual clock; HTTP runs for real.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { PARKED_MESSAGE } from "../../src/dispatcher.js";
import { EmitError } from "../../src/emitter.js";
import { verifyWebhook } from "../../src/verify.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { postgresBackend } from "../helpers/stores.js";

const open: Array<{ cleanup(): Promise<void> } | Receiver> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await ("cleanup" in o ? o.cleanup() : o.close());
});

async function setup(opts: Parameters<typeof startTestEngine>[0] = {}) {
  const t = await startTestEngine(opts);
  open.push(t);
  return t;
}
async function receiver(reply?: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(reply);
  open.push(r);
  return r;
}
async function hook(t: TestEngine, user: string, rx: Receiver, path = "/hook", events = ["*"]) {
  return t.engine.manager.create(user, { url: `${rx.url}${path}`, events });
}
const rows = async (t: TestEngine, table: "webhook_deliveries" | "webhook_events") =>
  Number(
    (
      await t.store.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe("delivery engine (embedded)", () => {
  it("delivers 10,000 events to 20 webhooks: each once, signed, one attempt each", async () => {
    const rx = await receiver();
    // The default timeout: with the receiver in this process and the suite's other files beside
    // it on two cores, a 5 s budget can run out and turn a slow answer into a second attempt.
    const t = await setup({ config: { workers: 50, timeoutMs: 30_000 } });
    const secrets = new Map<string, string>();
    for (let u = 0; u < 10; u++) {
      for (let k = 0; k < 2; k++) {
        const { webhook, secret } = await hook(t, `user${u}`, rx, `/u${u}/h${k}`);
        secrets.set(webhook.url.slice(rx.url.length), secret);
      }
    }
    for (let i = 0; i < 10_000; i += 500) {
      await t.engine.emitter.emitBatch(
        Array.from({ length: 500 }, (_, j) => ({
          event: "memory.created",
          userId: `user${(i + j) % 10}`,
          data: { n: i + j, text: "héllo 😀" },
        })),
      );
    }
    // Bounded generously: the suite runs files side by side on two shared cores.
    await rx.waitForRequests(20_000, 150_000);
    await t.engine.worker!.idle();
    const seen = new Set<string>();
    for (const req of rx.requests) {
      const id = String(req.headers["webhook-id"]);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      const event = verifyWebhook<{ data: { n: number } }>({
        body: req.body,
        headers: req.headers,
        secret: secrets.get(req.path)!,
      });
      expect(req.path.startsWith(`/u${event.data.n % 10}/`)).toBe(true);
    }
    expect(seen.size).toBe(20_000);
    const statuses = await t.store.db
      .selectFrom("webhook_deliveries")
      .select(["status", "attempts", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy(["status", "attempts"])
      .execute();
    expect(statuses).toEqual([{ status: "success", attempts: 1, n: 20_000 }]);
    expect(await rows(t, "webhook_events")).toBe(10_000);
  }, 180_000);

  it("retries on the schedule, records every attempt with its reason, then dead-letters", async () => {
    const rx = await receiver({ reply: { status: 500, body: "boom" } });
    const clock = new ManualClock();
    // Retries are woken by their own timers; an hourly sweep keeps the 24 h advance below cheap
    // (at the default 1 s it runs 86,400 sweeps, which on a loaded machine takes over a minute).
    const t = await setup({ clock, config: { breakerThreshold: 100 }, sweepIntervalMs: 3_600_000 });
    const { webhook } = await hook(t, "alice", rx);
    const { id: _evt } = await t.engine.emitter.emit("sync.failed", {
      userId: "alice",
      data: { sync_id: "s1" },
    });
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    const delays = [1000, 5000, 30_000, 300_000, 1_800_000];
    for (const [i, delay] of delays.entries()) {
      await clock.advance(delay - 1);
      await t.engine.worker!.idle();
      expect(rx.requests).toHaveLength(i + 1); // not a moment early
      await clock.advance(1);
      await rx.waitForRequests(i + 2);
      await t.engine.worker!.idle();
    }
    await clock.advance(24 * 3_600_000);
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(6);
    const [d] = (await t.engine.manager.deliveries("alice", webhook.id, {})).data;
    expect(d).toMatchObject({
      status: "dead_letter",
      attempts: 6,
      response_code: 500,
      response_body: "boom",
    });
    const attempts = await t.store.deliveries.attempts(d!.id);
    expect(attempts.map((a) => [a.attempt, a.responseCode, a.errorType])).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => [n, 500, "http_status"]),
    );
    // The same delivery id on every retry: the receiver's de-duplication key.
    expect(new Set(rx.requests.map((r) => r.headers["x-continuum-delivery"])).size).toBe(1);
  });

  it("waits at least Retry-After on 429, within its cap", async () => {
    const rx = await receiver();
    rx.enqueue({ status: 429, headers: { "retry-after": "3" } });
    const clock = new ManualClock();
    const t = await setup({ clock });
    await hook(t, "alice", rx);
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    await clock.advance(1999); // scheduled 1 s, Retry-After 3 s, capped at 2 × 1 s
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(1);
    await clock.advance(1);
    await rx.waitForRequests(2);
  });

  it("treats 3xx as a failure and never follows the redirect", async () => {
    const other = await receiver();
    const rx = await receiver({ reply: { status: 302, headers: { location: `${other.url}/x` } } });
    const t = await setup();
    const { webhook } = await hook(t, "alice", rx);
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    expect(other.requests).toHaveLength(0);
    const [d] = (await t.engine.manager.deliveries("alice", webhook.id, {})).data;
    expect(d).toMatchObject({ status: "failed", response_code: 302, attempts: 1 });
  });

  it("disables the webhook on 410 Gone, parks its other deliveries, and sends them once enabled again", async () => {
    const rx = await receiver({ reply: { status: 410 } });
    const t = await setup({ config: { endpointConcurrency: 1 } });
    const { webhook } = await hook(t, "alice", rx);
    await t.engine.emitter.emitBatch(
      Array.from({ length: 3 }, () => ({ event: "memory.created", userId: "alice", data: {} })),
    );
    await rx.waitForRequests(1);
    await t.engine.worker!.idle();
    await new Promise((r) => setTimeout(r, 1200)); // one sweep
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(1);
    expect(await t.engine.manager.get("alice", webhook.id)).toMatchObject({
      active: false,
      disabled_reason: "endpoint answered 410 Gone",
    });
    // The one that got 410 failed; the others wait, spending no attempt, for the webhook to return.
    const views = (await t.engine.manager.deliveries("alice", webhook.id, {})).data;
    expect(views.map((d) => [d.status, d.attempts, d.next_retry_at]).sort()).toEqual([
      ["failed", 1, null],
      ["pending", 0, null],
      ["pending", 0, null],
    ]);
    expect(views.filter((d) => d.status === "pending").map((d) => d.error_message)).toEqual(
      Array(2).fill(PARKED_MESSAGE),
    );
    // Nothing new is created for a disabled webhook.
    expect((await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} })).deliveries).toBe(0);
    // Enabled again, the waiting ones go out: nothing acknowledged is dropped by the pause.
    rx.setReply({ status: 200 });
    await t.engine.manager.update("alice", webhook.id, { active: true });
    await rx.waitForRequests(3);
    await t.engine.worker!.idle();
    const after = (await t.engine.manager.deliveries("alice", webhook.id, {})).data.map((d) => d.status);
    expect(after.sort()).toEqual(["failed", "success", "success"]);
  });

  it("opens the breaker after 5 failures, sends nothing while open, and closes on a good probe", async () => {
    const rx = await receiver({ reply: { status: 500 } });
    const clock = new ManualClock();
    const t = await setup({
      clock,
      config: { endpointConcurrency: 1, retrySchedule: [1000, 1000, 1000, 1000, 1000, 1000, 1000] },
    });
    const { webhook } = await hook(t, "alice", rx);
    await t.engine.emitter.emitBatch(
      Array.from({ length: 5 }, (_, i) => ({ event: "memory.created", userId: "alice", data: { i } })),
    );
    await rx.waitForRequests(5);
    await t.engine.worker!.idle();
    expect(t.engine.worker!.breakerStates()).toEqual([{ webhookId: webhook.id, state: "open" }]);
    const opened = await t.engine.manager.get("alice", webhook.id);
    expect(opened.circuit_breaker.state).toBe("open");
    // Retries fall due during the cooldown: they wait, spending no attempt, and say so: each
    // shows the probe time (opened + 5 min), not a time already past.
    await clock.advance(299_000);
    const probe = new Date(Date.parse(opened.circuit_breaker.opened_at!) + 300_000).toISOString();
    const waiting = (await t.engine.manager.deliveries("alice", webhook.id, {})).data;
    expect(waiting.map((d) => [d.status, d.next_retry_at])).toEqual(Array(5).fill(["failed", probe]));
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(5);
    rx.setReply({ status: 200 });
    await clock.advance(1000);
    await rx.waitForRequests(6);
    await t.engine.worker!.idle();
    await clock.advance(10);
    await rx.waitForRequests(10);
    await t.engine.worker!.idle();
    expect(t.engine.worker!.breakerStates()[0]!.state).toBe("closed");
    const attempts = (await t.engine.manager.deliveries("alice", webhook.id, {})).data.map((d) => d.attempts);
    expect(attempts.sort()).toEqual([2, 2, 2, 2, 2]);
  });

  it("never lets a hanging webhook hold back another one, and caps in-flight requests per webhook", async () => {
    const slow = await receiver({ reply: { hang: true } });
    const fast = await receiver();
    const t = await setup({ config: { workers: 20, timeoutMs: 3000 } });
    await hook(t, "slow", slow);
    await hook(t, "fast", fast);
    await t.engine.emitter.emitBatch(
      Array.from({ length: 200 }, () => ({ event: "memory.created", userId: "slow", data: {} })),
    );
    await slow.waitForRequests(10);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = Date.now();
      await t.engine.emitter.emit("memory.created", { userId: "fast", data: { i } });
      await fast.waitForRequests(i + 1);
      latencies.push(Date.now() - started);
    }
    latencies.sort((x, y) => x - y);
    // Tens of milliseconds, not the 3 s the hanging endpoint holds its slots for.
    expect(latencies[latencies.length - 1]).toBeLessThan(500);
    expect(slow.maxInFlight).toBe(10);
  });

  it("refuses bad events and writes nothing", async () => {
    const rx = await receiver();
    const t = await setup();
    await hook(t, "alice", rx);
    const bad: Array<[Parameters<typeof t.engine.emitter.emitBatch>[0], string]> = [
      [[{ event: "memory.exploded", userId: "alice", data: {} }], "unknown_event"],
      [[{ event: "memory.created", userId: "", data: {} }], "invalid_user"],
      [
        [{ event: "memory.created", userId: "alice", data: [] as unknown as Record<string, unknown> }],
        "invalid_data",
      ],
      [[{ event: "memory.created", userId: "alice", data: { x: Number.NaN } }], "invalid_data"],
      [
        [{ event: "memory.created", userId: "alice", data: { x: 1n } as unknown as Record<string, unknown> }],
        "invalid_data",
      ],
      [
        [{ event: "memory.created", userId: "alice", data: {}, priority: "urgent" as "high" }],
        "invalid_priority",
      ],
      [[], "invalid_batch"],
      [
        [
          { event: "memory.created", userId: "alice", data: {} },
          { event: "nope", userId: "alice", data: {} },
        ],
        "unknown_event",
      ],
    ];
    for (const [input, code] of bad) {
      await expect(t.engine.emitter.emitBatch(input)).rejects.toMatchObject({ code, name: EmitError.name });
    }
    expect(await rows(t, "webhook_events")).toBe(0);
    expect(await rows(t, "webhook_deliveries")).toBe(0);
  });

  it("answers a repeated idempotency key with the first result and creates nothing new", async () => {
    const rx = await receiver();
    const t = await setup();
    await hook(t, "alice", rx);
    await hook(t, "alice", rx, "/second");
    const first = await t.engine.emitter.emit("memory.created", {
      userId: "alice",
      data: {},
      idempotencyKey: "k1",
    });
    const again = await t.engine.emitter.emit("memory.created", {
      userId: "alice",
      data: { other: 1 },
      idempotencyKey: "k1",
    });
    expect(first).toMatchObject({ deliveries: 2, duplicate: false });
    expect(again).toEqual({ id: first.id, deliveries: 2, duplicate: true });
    const otherUser = await t.engine.emitter.emit("memory.created", {
      userId: "bob",
      data: {},
      idempotencyKey: "k1",
    });
    expect(otherUser.duplicate).toBe(false);
    await rx.waitForRequests(2);
    await t.engine.worker!.idle();
    expect(rx.requests).toHaveLength(2);
  });

  it("signs with both secrets during a rotation", async () => {
    const rx = await receiver();
    const t = await setup();
    const { webhook, secret: oldSecret } = await hook(t, "alice", rx);
    const { secret: newSecret } = await t.engine.manager.rotateSecret("alice", webhook.id);
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    const req = rx.requests[0]!;
    expect(String(req.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    for (const secret of [oldSecret, newSecret]) {
      expect(verifyWebhook({ body: req.body, headers: req.headers, secret })).toMatchObject({
        event: "memory.created",
      });
    }
  });

  it("finishes in-flight deliveries on graceful shutdown and loses nothing", async () => {
    const rx = await receiver({ reply: { delayMs: 300 } });
    const t = await setup({ config: { workers: 10 } });
    await hook(t, "alice", rx);
    await t.engine.emitter.emitBatch(
      Array.from({ length: 50 }, (_, i) => ({ event: "memory.created", userId: "alice", data: { i } })),
    );
    await rx.waitForRequests(5);
    await t.engine.close();
    const counts = await t.store.db
      .selectFrom("webhook_deliveries")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("status")
      .execute();
    const byStatus = Object.fromEntries(counts.map((c) => [c.status, Number(c.n)]));
    // Everything either delivered and recorded, or still pending for the next start.
    expect((byStatus.success ?? 0) + (byStatus.pending ?? 0)).toBe(50);
    expect(byStatus.success).toBeGreaterThanOrEqual(5);
    expect(rx.requests.length).toBe(byStatus.success);
  });
});

describe.skipIf(postgresBackend.skip)("delivery engine on PostgreSQL (Postgres-only queue)", () => {
  it("delivers every event once to every subscriber, signed, and honours idempotency keys", async () => {
    const rx = await receiver();
    const t = await setup({ backend: "postgres", config: { workers: 20 } });
    const secrets = new Map<string, string>();
    for (const path of ["/a", "/b", "/c"]) {
      const { secret } = await hook(t, "alice", rx, path);
      secrets.set(path, secret);
    }
    await hook(t, "bob", rx, "/bob", ["sync.failed"]);
    const first = await t.engine.emitter.emitBatch([
      { event: "memory.created", userId: "alice", data: { n: -1 }, idempotencyKey: "k" },
      { event: "memory.created", userId: "alice", data: { n: -2 }, idempotencyKey: "k" },
    ]);
    expect(first[1]).toEqual({ id: first[0]!.id, deliveries: 3, duplicate: true });
    for (let i = 0; i < 1000; i += 250) {
      await t.engine.emitter.emitBatch(
        Array.from({ length: 250 }, (_, j) => ({
          event: "memory.created",
          userId: "alice",
          data: { n: i + j, s: "ü😀" },
        })),
      );
    }
    expect((await t.engine.emitter.emit("memory.created", { userId: "bob", data: {} })).deliveries).toBe(0);
    await rx.waitForRequests(3003, 60_000);
    await t.engine.worker!.idle();
    const ids = new Set(rx.requests.map((r) => String(r.headers["webhook-id"])));
    expect(ids.size).toBe(3003);
    for (const req of rx.requests) {
      verifyWebhook({ body: req.body, headers: req.headers, secret: secrets.get(req.path)! });
    }
    expect(rx.maxInFlight).toBeLessThanOrEqual(30);
    const statuses = await t.store.db
      .selectFrom("webhook_deliveries")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("status")
      .execute();
    expect(statuses.map((s) => [s.status, Number(s.n)])).toEqual([["success", 3003]]);
  }, 90_000);
});
