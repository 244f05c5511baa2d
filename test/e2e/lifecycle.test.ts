/**
 * `serve --no-workers` and `worker` from the outside, on one SQLite file: what an operator sees
 * while setting up the distributed shape — /health telling that nothing delivers, a worker's
 * /health and /metrics answering like serve's, a second worker on a taken metrics port naming
 * the setting to change, and a worker without WEBHOOK_ALLOW_TARGETS saying why it refuses a
 * development target.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, runCli, type Served, startServe } from "../helpers/cli.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("serve --no-workers and worker processes", () => {
  let dir: string;
  let db: string;
  let key: string;
  let api: Served;
  let receiver: Receiver;
  const started: Served[] = [];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${api.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  const health = async (port: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    return (await res.json()) as { status: string; reasons: string[]; workers_alive: number | null };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cw-lifecycle-"));
    db = join(dir, "cw.db");
    const created = await runCli(["api-key", "create", "--user", "alice", "--db", db]);
    expect(created.code).toBe(0);
    key = created.stdout.trim();
    receiver = await startReceiver();
    api = await startServe(["serve", "--no-workers", "--db", db], {
      env: { WEBHOOK_ALLOW_TARGETS: "127.0.0.0/8", LOG_LEVEL: "warn" },
    });
    started.push(api);
  });

  afterAll(async () => {
    for (const s of started) await s.stop("SIGKILL");
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports degraded with no_live_workers while work waits and no worker runs", async () => {
    const created = await call("POST", "/api/v1/webhooks", { url: `${receiver.url}/a`, events: ["*"] });
    expect(created.status).toBe(201);
    const emitted = await call("POST", "/api/v1/events", {
      event: "memory.created",
      data: { memory_id: "m1", content_preview: "x", concepts: [], importance: 0.5 },
    });
    expect(emitted.status).toBe(202);
    const h = await health(api.port);
    expect(h.status).toBe("degraded");
    expect(h.reasons).toContain("no_live_workers");
    expect(h.workers_alive).toBe(0);
  });

  it("a worker without WEBHOOK_ALLOW_TARGETS says at warn level why it refuses the target, and counts as alive", async () => {
    const metricsPort = await freePort();
    const worker = await startServe(["worker", "--db", db, "--metrics-port", String(metricsPort)], {
      env: { LOG_LEVEL: "warn" },
      healthPort: metricsPort,
    });
    started.push(worker);
    const deadline = Date.now() + 15_000;
    while (!/WEBHOOK_ALLOW_TARGETS/.test(worker.stdout()) && Date.now() < deadline) await sleep(100);
    expect(worker.stdout()).toMatch(/"level":40.*delivery refused.*WEBHOOK_ALLOW_TARGETS on every worker/);
    expect(receiver.requests).toHaveLength(0);

    const h = await health(api.port);
    expect(h.workers_alive).toBe(1);
    expect(h.reasons).not.toContain("no_live_workers");

    // The worker's own /health and /metrics: the same plugin, schemas and errors as serve's.
    const own = await health(metricsPort);
    expect(own).toMatchObject({ running: true, workers: 10, workers_alive: 1 });
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(await metrics.text()).toContain("webhook_queue_depth");
    const missing = await fetch(`http://127.0.0.1:${metricsPort}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toContain("application/problem+json");
    expect(await missing.json()).toMatchObject({ status: 404 });

    // A second worker on the same host and metrics port: one line naming the setting.
    const second = await runCli(["worker", "--db", db, "--metrics-port", String(metricsPort)], {
      env: { LOG_LEVEL: "warn" },
    });
    expect(second.code).toBe(2);
    expect(second.stderr.trim().split("\n")).toHaveLength(1);
    expect(second.stderr).toMatch(/already in use.*--metrics-port \/ METRICS_PORT.*its own/);

    // Stopped, it stops counting at once (it retires its heartbeat).
    expect(await worker.stop()).toBe(0);
    expect((await health(api.port)).workers_alive).toBe(0);
  });
});
