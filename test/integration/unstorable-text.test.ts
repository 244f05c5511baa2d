/**
 * PostgreSQL cannot keep U+0000 (in TEXT or JSONB) nor an unpaired surrogate (JSONB refuses it,
 * TEXT turns it into U+FFFD); SQLite could. The input rules refuse both for every backend alike,
 * naming where they were found, so no store ever gets text it would lose or choke on.
 */
import { afterEach, describe, expect, it } from "vitest";
import { EmitError } from "../../src/emitter.js";
import { ManagerError } from "../../src/manager.js";
import { startApi } from "../api/helpers.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { backends } from "../helpers/stores.js";

const open: Array<{ cleanup(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.cleanup();
});

const rows = async (t: TestEngine, table: "webhooks" | "webhook_events") =>
  Number(
    (
      await t.store.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

for (const backend of backends) {
  describe.skipIf(backend.skip)(`text no store can keep: ${backend.name}`, () => {
    it("refuses NUL and lone surrogates in a webhook's name, description and metadata, naming the field", async () => {
      const t = await startTestEngine({ backend: backend.name, workers: false });
      open.push(t);
      const url = "http://127.0.0.1:9/h";
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ name: "a\u0000b" }, "name"],
        [{ description: "x\ud800y" }, "description"],
        [{ metadata: { team: { lead: "a\u0000" } } }, "metadata.team.lead"],
        [{ metadata: { tags: ["ok", "\udc00"] } }, "metadata.tags[1]"],
      ];
      for (const [fields, field] of cases) {
        const err = await t.engine.manager.create("alice", { url, events: ["*"], ...fields }).catch((e) => e);
        expect(err).toBeInstanceOf(ManagerError);
        expect(err).toMatchObject({ code: "invalid_field", field });
        expect(String(err.message)).toMatch(/NUL character .* unpaired surrogate/);
      }
      expect(await rows(t, "webhooks")).toBe(0);
      // What any store keeps exactly is accepted: astral characters, paired surrogates.
      const { webhook } = await t.engine.manager.create("alice", { url, events: ["*"], name: "ok 😀 ✓" });
      expect(webhook.name).toBe("ok 😀 ✓");
      const patched = await t.engine.manager
        .update("alice", webhook.id, { metadata: { k: "\u0000" } })
        .catch((e) => e);
      expect(patched).toMatchObject({ code: "invalid_field", field: "metadata.k" });
      expect((await t.engine.manager.get("alice", webhook.id)).metadata).toBeNull();
    });

    it("refuses them in event data and user ids, naming the path, and writes nothing", async () => {
      const t = await startTestEngine({ backend: backend.name, workers: false });
      open.push(t);
      for (const [data, field] of [
        [{ note: "a\u0000b" }, "data.note"],
        [{ items: [{ text: "\ud83d" }] }, "data.items[0].text"],
      ] as const) {
        const err = await t.engine.emitter.emit("memory.created", { userId: "alice", data }).catch((e) => e);
        expect(err).toBeInstanceOf(EmitError);
        expect(err).toMatchObject({ code: "invalid_data", field });
      }
      const user = await t.engine.emitter
        .emit("memory.created", { userId: "al\ud800ice", data: {} })
        .catch((e) => e);
      expect(user).toMatchObject({ field: "user_id" });
      expect(await rows(t, "webhook_events")).toBe(0);
      await t.engine.emitter.emit("memory.created", { userId: "alice", data: { note: "héllo 😀" } });
      expect(await rows(t, "webhook_events")).toBe(1);
    });
  });
}

describe("over HTTP", () => {
  it("answers 422 naming the field for a NUL the JSON text spells as \\u0000", async () => {
    const api = await startApi();
    open.push({ cleanup: () => api.cleanup() });
    const res = await api.call(api.keys.alice, {
      method: "POST",
      url: "/api/v1/webhooks",
      headers: { "content-type": "application/json" },
      payload: '{"url": "http://127.0.0.1:9/h", "events": ["*"], "name": "a\\u0000b"}',
    });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ errors: [{ field: "name" }] });
    expect((await api.counts()).webhooks).toBe(0);
  });
});
