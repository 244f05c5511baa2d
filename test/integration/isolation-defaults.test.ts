/**
 * No endpoint can stall the others at the settings a user starts with (WEBHOOK_WORKERS 10,
 * WEBHOOK_ENDPOINT_CONCURRENCY 10, WEBHOOK_TIMEOUT 30 s): endpoints that hang — on their own
 * port, or on the very host:port of a healthy webhook of another user — each subscribed to every
 * event of the healthy webhook's user, while a healthy webhook keeps receiving in a fraction of
 * the time the hanging ones hold their requests. Only the drain budget is shortened, so that the
 * test's own shutdown does not wait out the hanging requests.
 */
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";

const open: Array<{ cleanup(): Promise<void> } | Receiver> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await ("cleanup" in o ? o.cleanup() : o.close());
});

async function engineAtDefaults(): Promise<TestEngine> {
  const defaults = loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", WEBHOOK_DRAIN_TIMEOUT: "200ms" });
  expect(defaults).toMatchObject({ workers: 10, endpointConcurrency: 10, timeoutMs: 30_000 });
  const t = await startTestEngine({ config: defaults });
  open.push(t);
  return t;
}

/** Emits `n` events one after another; returns how long each took to reach the healthy receiver. */
async function latencies(t: TestEngine, healthy: Receiver, path: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const before = healthy.requests.filter((r) => r.path === path).length;
    const started = Date.now();
    await t.engine.emitter.emit("memory.created", { userId: "alice", data: { i } });
    const deadline = started + 20_000;
    while (healthy.requests.filter((r) => r.path === path).length <= before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2));
    }
    out.push(Date.now() - started);
  }
  return out.sort((a, b) => a - b);
}

describe("isolation at the default settings", () => {
  for (const hanging of [1, 5, 20, 60]) {
    it(`a healthy webhook keeps receiving beside ${hanging} hanging endpoint(s) on their own ports`, async () => {
      const t = await engineAtDefaults();
      const healthy = await startReceiver();
      open.push(healthy);
      const stuck: Receiver[] = [];
      for (let i = 0; i < hanging; i++) {
        const rx = await startReceiver({ reply: { hang: true } });
        open.push(rx);
        stuck.push(rx);
        await t.engine.manager.create("alice", { url: `${rx.url}/stuck`, events: ["*"] });
      }
      // Every hanging endpoint already holds requests before the healthy one is measured.
      await t.engine.emitter.emitBatch(
        Array.from({ length: 30 }, (_, i) => ({ event: "memory.created", userId: "alice", data: { i } })),
      );
      for (const rx of stuck) await rx.waitForRequests(1, 10_000);
      await t.engine.manager.create("alice", { url: `${healthy.url}/ok`, events: ["*"] });

      const ms = await latencies(t, healthy, "/ok", 30);
      // The hanging endpoints hold their requests for 30 s; the healthy one waits for none of them.
      expect(ms[ms.length - 1]).toBeLessThan(3000);
      expect(Math.max(...stuck.map((rx) => rx.maxInFlight))).toBeLessThanOrEqual(10);
    });
  }

  it("webhooks of other users on the same host:port as hanging ones are not held up by them", async () => {
    const t = await engineAtDefaults();
    // One origin for all: /hang answers never, /ok at once.
    const shared = await startReceiver({
      reply: (req) => (req.path.startsWith("/hang") ? { hang: true } : {}),
    });
    open.push(shared);
    for (let i = 0; i < 3; i++) {
      await t.engine.manager.create(`other${i}`, { url: `${shared.url}/hang${i}`, events: ["*"] });
      await t.engine.emitter.emitBatch(
        Array.from({ length: 30 }, (_, j) => ({ event: "memory.created", userId: `other${i}`, data: { j } })),
      );
    }
    const deadline = Date.now() + 10_000;
    while (shared.inFlight < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Each hanging webhook holds its whole allowance on the shared origin: more than one pool's worth.
    expect(shared.inFlight).toBe(30);
    await t.engine.manager.create("alice", { url: `${shared.url}/ok`, events: ["*"] });
    const ms = await latencies(t, shared, "/ok", 20);
    expect(ms[ms.length - 1]).toBeLessThan(3000);
  });
});
