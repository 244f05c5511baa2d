/** Group commit of single-event requests (src/api/ingest.ts). */
import { afterEach, describe, expect, it } from "vitest";
import { CoalescingEmitter } from "../../src/api/ingest.js";
import { EmitError, type EmitInput, type EmitResult } from "../../src/emitter.js";
import { hookBody, json, startApi, type TestApi } from "./helpers.js";

const input = (n: number, extra: Partial<EmitInput> = {}): EmitInput => ({
  event: "memory.created",
  userId: "u",
  data: { n },
  ...extra,
});

/** An emitBatch stand-in that records its calls and refuses events whose data has `bad`. */
function recorder(fail?: (batch: readonly EmitInput[]) => unknown) {
  const calls: EmitInput[][] = [];
  return {
    calls,
    async emitBatch(batch: readonly EmitInput[]): Promise<EmitResult[]> {
      calls.push([...batch]);
      const err = fail?.(batch);
      if (err) throw err;
      const bad = batch.findIndex((e) => "bad" in e.data);
      if (bad >= 0)
        throw new EmitError("invalid_data", "data", "too big", batch.length > 1 ? bad : undefined);
      return batch.map((e) => ({ id: `evt_${String(e.data.n)}`, deliveries: 1, duplicate: false }));
    },
  };
}

describe("CoalescingEmitter", () => {
  it("writes requests of the same turn in one batch and answers each its own result", async () => {
    const r = recorder();
    const c = new CoalescingEmitter(r);
    const results = await Promise.all([1, 2, 3].map((n) => c.emit(input(n))));
    expect(results.map((x) => x.id)).toEqual(["evt_1", "evt_2", "evt_3"]);
    expect(r.calls.map((b) => b.length)).toEqual([3]);
    // The next turn is the next batch.
    await c.emit(input(4));
    expect(r.calls.map((b) => b.length)).toEqual([3, 1]);
  });

  it("refuses only the request whose event is refused, without a batch index in the message", async () => {
    const r = recorder();
    const c = new CoalescingEmitter(r);
    const settled = await Promise.allSettled([
      c.emit(input(1)),
      c.emit(input(2, { data: { bad: 1 } })),
      c.emit(input(3)),
    ]);
    expect(settled[0]).toMatchObject({ status: "fulfilled", value: { id: "evt_1" } });
    expect(settled[2]).toMatchObject({ status: "fulfilled", value: { id: "evt_3" } });
    expect(settled[1]).toMatchObject({
      status: "rejected",
      reason: { code: "invalid_data", field: "data", message: "too big" },
    });
    expect((settled[1] as PromiseRejectedResult).reason.index).toBeUndefined();
    // One failed attempt with all three, then the two good ones.
    expect(r.calls.map((b) => b.map((e) => e.data.n ?? "bad"))).toEqual([
      [1, "bad", 3],
      [1, 3],
    ]);
  });

  it("falls back to one transaction per request when the batch fails for another reason", async () => {
    let first = true;
    const r = recorder(() => {
      if (!first) return undefined;
      first = false;
      return new Error("SQLITE_BUSY");
    });
    const c = new CoalescingEmitter(r);
    const results = await Promise.all([1, 2].map((n) => c.emit(input(n))));
    expect(results.map((x) => x.id)).toEqual(["evt_1", "evt_2"]);
    expect(r.calls.map((b) => b.length)).toEqual([2, 1, 1]);
  });

  it("passes a lone request's error through unchanged", async () => {
    const boom = new Error("disk full");
    const c = new CoalescingEmitter(recorder(() => boom));
    await expect(c.emit(input(1))).rejects.toBe(boom);
  });
});

describe("POST /api/v1/events under concurrency", () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.cleanup();
    api = undefined;
  });

  it("writes every concurrent event once, and one event per idempotency key", async () => {
    api = await startApi();
    await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      payload: hookBody(8080, { events: ["*"] }),
    });
    const a = api;
    const emit = (payload: Record<string, unknown>) =>
      a.call(a.keys.alice, { method: "POST", url: "/api/v1/events", payload });
    const plain = await Promise.all(
      Array.from({ length: 20 }, (_, n) => emit({ event: "memory.created", data: { n } })),
    );
    expect(plain.map((r) => r.statusCode)).toEqual(Array(20).fill(202));
    expect(new Set(plain.map((r) => json<{ id: string }>(r).id)).size).toBe(20);
    expect(await api.counts()).toMatchObject({ events: 20, deliveries: 20 });

    const keyed = await Promise.all(
      Array.from({ length: 5 }, () => emit({ event: "memory.created", data: {}, idempotency_key: "same" })),
    );
    const bodies = keyed.map((r) => json<{ id: string; duplicate: boolean }>(r));
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
    expect(await api.counts()).toMatchObject({ events: 21, deliveries: 21 });

    const mixed = await Promise.all([
      emit({ event: "memory.created", data: { ok: 1 } }),
      emit({ event: "memory.created", data: { big: "x".repeat(300_000) } }),
      emit({ event: "memory.created", data: { ok: 2 } }),
    ]);
    expect(mixed.map((r) => r.statusCode)).toEqual([202, 422, 202]);
    expect(json(mixed[1]!)).toMatchObject({ errors: [{ field: "data" }] });
    expect(await api.counts()).toMatchObject({ events: 23, deliveries: 23 });
  });
});
