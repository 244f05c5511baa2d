/**
 * Crash safety of the embedded mode: `serve` is SIGKILLed in the middle of delivering and started
 * again; every event acknowledged before the kill must reach its receiver at least once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startServe } from "../helpers/cli.js";
import { openProducer } from "../helpers/engine.js";
import { startReceiver } from "../helpers/receiver.js";

const dir = mkdtempSync(join(tmpdir(), "cw-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("crash safety (embedded)", () => {
  it("delivers every acknowledged event at least once across a SIGKILL and restart", async () => {
    const rx = await startReceiver({ reply: { delayMs: 2 } });
    const sqlitePath = join(dir, "crash.db");
    // The producer is this test process, writing to the same file as `serve`; it runs no workers.
    const { engine: producer, store, close: closeProducer } = await openProducer(sqlitePath);
    const env = { SQLITE_PATH: sqlitePath, WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", WEBHOOK_WORKERS: "20" };
    let served = await startServe(["serve"], { env });
    try {
      await producer.manager.create("alice", { url: `${rx.url}/a`, events: ["*"] });
      await producer.manager.create("alice", { url: `${rx.url}/b`, events: ["memory.created"] });
      const emitted = new Set<string>();
      for (let i = 0; i < 2500; i += 250) {
        const results = await producer.emitter.emitBatch(
          Array.from({ length: 250 }, (_, j) => ({
            event: "memory.created",
            userId: "alice",
            data: { n: i + j },
          })),
        );
        for (const r of results) emitted.add(r.id);
      }
      await rx.waitForRequests(800, 30_000);
      expect(await served.stop("SIGKILL")).toBeNull();
      const beforeRestart = rx.requests.length;
      expect(beforeRestart).toBeLessThan(5000);

      served = await startServe(["serve"], { env });
      const deadline = Date.now() + 60_000;
      const delivered = () => new Set(rx.requests.map((r) => `${r.path} ${JSON.parse(r.text).id}`));
      while (delivered().size < 5000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const got = delivered();
      for (const id of emitted) {
        expect(got.has(`/a ${id}`)).toBe(true);
        expect(got.has(`/b ${id}`)).toBe(true);
      }
      // Duplicates are allowed (at-least-once) but only for what was in flight at the kill.
      expect(rx.requests.length - 5000).toBeLessThanOrEqual(40);
      await served.stop();
      const left = await store.db
        .selectFrom("webhook_deliveries")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "!=", "success")
        .executeTakeFirstOrThrow();
      expect(Number(left.n)).toBe(0);
    } finally {
      await served.stop("SIGKILL");
      await closeProducer();
      await rx.close();
    }
  }, 120_000);
});
