/**
 * Shutdown past its drain budget, on both stores: what is still waiting for an answer is
 * cancelled before it is given back (nothing released is still being sent, and nothing starts
 * after), what was answered is recorded before the pools close, and the next start delivers the
 * rest once — never again what was answered before.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createEngine } from "../../src/engine.js";
import { createLogger } from "../../src/logger.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { backends } from "../helpers/stores.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const open: Array<{ cleanup(): Promise<void> } | Receiver> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await ("cleanup" in o ? o.cleanup() : o.close());
});

async function statuses(t: TestEngine): Promise<Record<string, number>> {
  const rows = await t.store.db
    .selectFrom("webhook_deliveries")
    .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("status")
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(`shutdown past the drain budget: ${backend.name}`, () => {
    it("cancels what it gives back, records what was answered, and the next start sends the rest once", async () => {
      let answered = 0;
      const rx = await startReceiver({
        // The first five answer at once; the rest would take 20 s.
        reply: () => (answered++ < 5 ? { status: 200 } : { status: 200, delayMs: 20_000 }),
      });
      open.push(rx);
      const t = await startTestEngine({
        backend: backend.name,
        config: { workers: 100, endpointConcurrency: 50, drainTimeoutMs: 300 },
      });
      open.push(t);
      await t.engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
      await t.engine.emitter.emitBatch(
        Array.from({ length: 60 }, (_, i) => ({ event: "memory.created", userId: "alice", data: { i } })),
      );
      await rx.waitForRequests(50, 10_000);

      const started = Date.now();
      await t.engine.close();
      expect(Date.now() - started).toBeLessThan(300 + 3000);
      const seenAtStop = rx.requests.length;
      await sleep(1000);
      // Nothing started after the release, and what was released is no longer being sent.
      expect(rx.requests.length).toBe(seenAtStop);
      expect(rx.inFlight).toBe(0);
      // Answered and recorded, or still pending: no attempt was charged for a cancelled request.
      expect(await statuses(t)).toEqual({ success: 5, pending: 55 });

      // The next start delivers the 55 others, once each, and nothing answered before.
      rx.clear();
      rx.setReply({ status: 200 });
      const next = createEngine({
        store: t.store,
        config: t.config,
        logger: createLogger("silent"),
        workers: true,
        sweepIntervalMs: 100,
      });
      try {
        await rx.waitForRequests(55, 20_000);
        await sleep(500);
        expect(rx.requests).toHaveLength(55);
        const ids = new Set(rx.requests.map((r) => r.headers["webhook-id"]));
        expect(ids.size).toBe(55);
      } finally {
        await next.close();
      }
      expect(await statuses(t)).toEqual({ success: 60 });
    });
  });
}
