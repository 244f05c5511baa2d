import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createEngine } from "../../src/engine.js";
import { createLogger } from "../../src/logger.js";
import { createApiKey, migrate, openStore } from "../../src/store/index.js";
import { startReceiver } from "../helpers/receiver.js";

it("logs JSON lines with webhook, delivery and event ids, and never a secret or key", async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().trim().split("\n"));
      done();
    },
  });
  const dir = mkdtempSync(join(tmpdir(), "cw-log-"));
  const store = openStore({ sqlitePath: join(dir, "log.db") });
  await migrate(store);
  const rx = await startReceiver({ reply: { status: 500 } });
  const logger = createLogger("debug", sink);
  const engine = createEngine({
    store,
    config: { ...loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" }), retrySchedule: [] },
    logger,
    workers: true,
  });
  try {
    const { key } = await createApiKey(store, {
      userId: "alice",
      role: "user",
      now: new Date().toISOString(),
    });
    const { webhook, secret } = await engine.manager.create("alice", { url: `${rx.url}/h`, events: ["*"] });
    // Even a careless call that hands a secret to the logger has it censored.
    logger.info({ webhook: { id: webhook.id, secret }, authorization: `Bearer ${key}` }, "careless");
    const { id: eventId } = await engine.emitter.emit("memory.created", { userId: "alice", data: {} });
    await rx.waitForRequests(1);
    await engine.worker!.idle();
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const dead = parsed.find((l) => l.msg === "delivery dead-lettered: every attempt failed");
    expect(dead).toMatchObject({ webhook_id: webhook.id, event: "memory.created", response_code: 500 });
    expect(String(dead?.delivery_id)).toMatch(/^dlv_/);
    expect(parsed.some((l) => l.msg === "careless")).toBe(true);
    const all = lines.join("\n");
    expect(all).not.toContain(secret);
    expect(all).not.toContain(key);
    expect(all).not.toContain(secret.slice(6, 20));
    expect(eventId).toMatch(/^evt_/);
  } finally {
    await engine.close();
    await store.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
