/**
 * The complete example receivers (FastAPI and Express) each receive a real delivery from a running
 * `continuum-webhooks serve`, and the service records it as delivered. The FastAPI one needs
 * Debian's Python with FastAPI and uvicorn: without them its test is skipped, naming the packages,
 * or fails under REQUIRE_TOOLCHAINS=1; the Express one needs Node alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, startServe } from "../helpers/cli.js";
import { openProducer } from "../helpers/engine.js";
import { needToolchain, PYTHON } from "../helpers/toolchains.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

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

/** How to start a receiver listening on `port` with `secret`. */
type Launcher = (port: number, secret: string) => ChildProcess;

const fastapi: Launcher = (port, secret) =>
  launch(
    PYTHON,
    ["-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", String(port)],
    join(ROOT, "examples/fastapi_receiver"),
    { CONTINUUM_WEBHOOK_SECRET: secret },
  );

const express: Launcher = (port, secret) =>
  launch(process.execPath, ["examples/express_receiver/server.js"], ROOT, {
    CONTINUUM_WEBHOOK_SECRET: secret,
    PORT: String(port),
    HOST: "127.0.0.1",
  });

async function receivesARealDelivery(name: string, start: Launcher): Promise<void> {
  const sqlitePath = join(dir, `${name}.db`);
  const { engine: producer, close: closeProducer } = await openProducer(sqlitePath);
  const port = await freePort();
  const created = await producer.manager.create("alice", {
    url: `http://127.0.0.1:${port}/webhooks/continuum`,
    events: ["*"],
  });
  const child = start(port, created.secret);
  const served = await startServe(["serve"], {
    env: { SQLITE_PATH: sqlitePath, WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" },
  });
  try {
    await until(
      async () => (await fetch(`http://127.0.0.1:${port}/webhooks/continuum`)).status < 500,
      `${name} receiver on ${port}`,
    );
    const { id } = await producer.emitter.emitMemoryCreated({
      userId: "alice",
      memoryId: "mem_1",
      contentPreview: "Grüße aus Königsberg 🌉",
      concepts: ["bridges"],
      importance: 0.9,
    });
    const w = created.webhook;
    await until(async () => {
      const [d] = (await producer.manager.deliveries("alice", w.id, {})).data;
      return d?.status === "success";
    }, `delivery to ${w.url}`);
    const [d] = (await producer.manager.deliveries("alice", w.id, {})).data;
    expect(d).toMatchObject({ event_id: id, status: "success", response_code: 200, attempts: 1 });
  } finally {
    await served.stop();
    child.kill("SIGTERM");
    await closeProducer();
  }
}

describe("complete receivers and a running service", () => {
  it("the FastAPI receiver accepts a real delivery", async (ctx) => {
    needToolchain(ctx, "python-frameworks");
    await receivesARealDelivery("fastapi", fastapi);
  }, 60_000);

  it("the Express receiver accepts a real delivery", async () => {
    await receivesARealDelivery("express", express);
  }, 60_000);
});
