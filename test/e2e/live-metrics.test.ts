/**
 * The dashboard and the alert rules against a LIVE service: `serve` delivers real successes and
 * failures (and opens a breaker), and every metric name they use must appear in its /metrics.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { startServe } from "../helpers/cli.js";
import { openProducer } from "../helpers/engine.js";
import {
  dashboardExprs,
  exportedNames,
  metricNames,
  read,
  ruleExprs,
  SPEC_METRICS,
} from "../helpers/promql.js";
import { startReceiver } from "../helpers/receiver.js";

it("every metric of the dashboard and the alert rules is exported by a running service", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cw-live-"));
  const sqlitePath = join(dir, "live.db");
  const good = await startReceiver();
  const bad = await startReceiver({ reply: { status: 500 } });
  const { engine: producer, close: closeProducer } = await openProducer(sqlitePath);
  const served = await startServe(["serve"], {
    env: { SQLITE_PATH: sqlitePath, WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", WEBHOOK_BREAKER_THRESHOLD: "1" },
  });
  try {
    await producer.manager.create("alice", { url: `${good.url}/ok`, events: ["*"] });
    await producer.manager.create("alice", { url: `${bad.url}/fail`, events: ["*"] });
    await producer.emitter.emit("quota.exceeded", {
      userId: "alice",
      data: { resource: "memories", used: 2, limit: 1 },
    });
    await good.waitForRequests(1, 10_000);
    await bad.waitForRequests(1, 10_000);
    let scrape = "";
    const deadline = Date.now() + 10_000;
    do {
      scrape = await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text();
      if (
        scrape.includes("webhook_circuit_breaker_opened_total 1") &&
        scrape.includes("webhook_failures_total{")
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    const exported = exportedNames(scrape);
    if (process.env.DEBUG_SCRAPE)
      console.log(
        scrape
          .split("\n")
          .filter((l) => l.startsWith("webhook"))
          .join("\n"),
      );
    for (const name of SPEC_METRICS) {
      const series = name.endsWith("_seconds") ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
      for (const s of series) expect(exported, s).toContain(s);
    }
    const used = new Set(
      [...dashboardExprs(), ...ruleExprs(read("deploy/prometheus/alerts.yml"))].flatMap((e) => [
        ...metricNames(e),
      ]),
    );
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    expect(scrape).toMatch(/webhook_deliveries_total\{event="quota\.exceeded",status="success"\} 1/);
    expect(scrape).toMatch(/webhook_failures_total\{endpoint="whk_[0-9A-Z]+",error_type="http_status"\} 1/);
  } finally {
    await served.stop();
    await closeProducer();
    await good.close();
    await bad.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
