/**
 * The complete example receivers (FastAPI and Express) receive a real delivery from a running
 * `continuum-webhooks serve`, and the service records each as delivered.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, startServe } from "../helpers/cli.js";
import { openProducer } from "../helpers/engine.js";
import { REQUIRE_SERVICES } from "../helpers/services.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PYTHON = "/usr/bin/python3";
const hasFastApi = spawnSync(PYTHON, ["-c", "import fastapi, uvicorn"], { stdio: "ignore" }).status === 0;
if (!hasFastApi && REQUIRE_SERVICES)
  throw new Error("REQUIRE_SERVICES=1 but python3-fastapi/uvicorn are missing");

const dir = mkdtempSync(join(tmpdir(), "cw-receivers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function launch(command: string, args: string[], cwd: string, env: Record<string, string>): ChildProcess {
  return spawn(command, args, {
    cwd,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env },
    stdio: "ignore",
  });
}

async function until(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!hasFastApi)("complete receivers and a running service", () => {
  it("FastAPI and Express receivers each accept a real delivery", async () => {
    const sqlitePath = join(dir, "svc.db");
    const { engine: producer, close: closeProducer } = await openProducer(sqlitePath);
    const [fastPort, expressPort] = [await freePort(), await freePort()];
    const fast = await producer.manager.create("alice", {
      url: `http://127.0.0.1:${fastPort}/webhooks/continuum`,
      events: ["*"],
    });
    const express = await producer.manager.create("alice", {
      url: `http://127.0.0.1:${expressPort}/webhooks/continuum`,
      events: ["*"],
    });
    const children = [
      launch(
        PYTHON,
        ["-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", String(fastPort)],
        join(ROOT, "examples/fastapi_receiver"),
        {
          CONTINUUM_WEBHOOK_SECRET: fast.secret,
        },
      ),
      launch(process.execPath, ["examples/express_receiver/server.js"], ROOT, {
        CONTINUUM_WEBHOOK_SECRET: express.secret,
        PORT: String(expressPort),
        HOST: "127.0.0.1",
      }),
    ];
    const served = await startServe(["serve"], {
      env: { SQLITE_PATH: sqlitePath, WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" },
    });
    try {
      for (const port of [fastPort, expressPort]) {
        await until(
          async () => (await fetch(`http://127.0.0.1:${port}/webhooks/continuum`)).status < 500,
          `receiver on ${port}`,
        );
      }
      const { id } = await producer.emitter.emitMemoryCreated({
        userId: "alice",
        memoryId: "mem_1",
        contentPreview: "Grüße aus Königsberg 🌉",
        concepts: ["bridges"],
        importance: 0.9,
      });
      for (const w of [fast.webhook, express.webhook]) {
        await until(async () => {
          const [d] = (await producer.manager.deliveries("alice", w.id, {})).data;
          return d?.status === "success";
        }, `delivery to ${w.url}`);
        const [d] = (await producer.manager.deliveries("alice", w.id, {})).data;
        expect(d).toMatchObject({ event_id: id, status: "success", response_code: 200, attempts: 1 });
      }
    } finally {
      await served.stop();
      for (const c of children) c.kill("SIGTERM");
      await closeProducer();
    }
  }, 60_000);
});
