/**
 * Every metric named by the Grafana dashboard, the alert rules and the runbooks' PromQL must be one
 * the service exports: a renamed metric otherwise leaves an empty panel or an alert that can never
 * fire, and nobody notices until the incident. "Exported" means present in a real scrape of
 * createMetrics() after one engine event of each kind, Node process metrics included. The promtool
 * checks are skipped without promtool, naming the package, or fail under REQUIRE_TOOLCHAINS=1.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EngineEvents } from "../../src/engine-events.js";
import { createMetrics } from "../../src/metrics.js";
import {
  dashboardExprs,
  exportedNames,
  metricNames,
  read,
  ruleExprs,
  runbookExprs,
  SPEC_METRICS,
} from "../helpers/promql.js";
import { needToolchain } from "../helpers/toolchains.js";

async function scrapeAfterOneEventOfEachKind(defaultMetrics = true): Promise<string> {
  const events = new EngineEvents();
  const metrics = createMetrics({
    events,
    defaultMetrics,
    queueDepth: async () => ({ high: 1, normal: 2, low: 3 }),
    breakerStates: async () => [{ webhookId: "whk_1", state: "open" }],
  });
  try {
    events.emit("enqueued", { count: 1, priority: "normal" });
    events.emit("dequeued", { count: 1 });
    events.emit("attempt", {
      webhookId: "whk_1",
      deliveryId: "dlv_1",
      event: "memory.created",
      attempt: 1,
      outcome: "retry",
      status: 503,
      durationMs: 40,
      errorType: "http_status",
    });
    events.emit("breaker", { webhookId: "whk_1", from: "closed", to: "open" });
    events.emit("disabled", { webhookId: "whk_2", reason: "410 Gone" });
    return await metrics.render();
  } finally {
    metrics.close();
  }
}

describe("metricNames (the extractor itself)", () => {
  it.each([
    ['sum by (job) (rate(webhook_deliveries_total{status!="success"}[5m]))', ["webhook_deliveries_total"]],
    ['histogram_quantile(0.95, sum by (le) (rate(h_bucket{job=~"$job"}[$__rate_interval])))', ["h_bucket"]],
    [
      "changes(process_start_time_seconds[30m]) > 2\nand on (job, instance) webhook_queue_dequeued_total",
      ["process_start_time_seconds", "webhook_queue_dequeued_total"],
    ],
    ["count(max by (webhook_id) (g) > 0) or vector(0)", ["g"]],
    ["sum(rate(a[5m] offset 1h)) by (x) * 1e3 # bar is not a metric", ["a"]],
    ["1 - sum(x_total) / ignoring(le) group_left y_total", ["x_total", "y_total"]],
  ])("%s", (expr, names) => {
    expect([...metricNames(expr)].sort()).toEqual([...names].sort());
  });
});

describe("the dashboard, the alert rules and the runbooks use only exported metrics", async () => {
  const exported = exportedNames(await scrapeAfterOneEventOfEachKind());
  const dashboard = dashboardExprs();
  const rules = ruleExprs(read("deploy/prometheus/alerts.yml"));
  const runbooks = runbookExprs();

  it("finds the expressions it checks", () => {
    expect(dashboard.length).toBeGreaterThanOrEqual(20);
    expect(rules).toHaveLength((read("deploy/prometheus/alerts.yml").match(/^\s*- alert:/gm) ?? []).length);
    expect(rules.length).toBe(7);
    // The seven alert pages and the README all carry PromQL.
    expect(new Set(runbooks.map((r) => r.file)).size).toBe(8);
  });

  it("scrape exports every CONTRACT §7 metric and the Node process metrics", () => {
    for (const name of SPEC_METRICS) {
      const series = name.endsWith("_seconds") ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
      for (const s of series) expect(exported, s).toContain(s);
    }
    expect(exported).toContain("process_start_time_seconds");
  });

  it.each([
    ["dashboard", () => dashboard],
    ["alerts.yml", () => rules],
    ["runbooks", () => runbooks.map((r) => r.expr)],
  ])("%s", (_source, exprs) => {
    const used = new Set(exprs().flatMap((e) => [...metricNames(e)]));
    expect(used.size).toBeGreaterThan(0);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });

  it("the dashboard shows every CONTRACT §7 metric", () => {
    const used = [...new Set(dashboard.flatMap((e) => [...metricNames(e)]))];
    for (const name of SPEC_METRICS) {
      expect(
        used.some((u) => u === name || u.startsWith(`${name}_`)),
        name,
      ).toBe(true);
    }
  });

  it("our own metrics pass Prometheus' parser and linter (promtool check metrics)", async (ctx) => {
    needToolchain(ctx, "promtool");
    // Without Node's default metrics: prom-client names some gauges *_total, which the linter flags.
    const scrape = await scrapeAfterOneEventOfEachKind(false);
    expect(scrape).toContain("webhook_delivery_duration_seconds_bucket");
    const r = spawnSync("promtool", ["check", "metrics"], { input: scrape, encoding: "utf8" });
    expect(`${r.stdout}${r.stderr}`).toBe("");
    expect(r.status).toBe(0);
  });

  it("every dashboard and runbook expression is valid PromQL (promtool)", (ctx) => {
    needToolchain(ctx, "promtool");
    const exprs = [...dashboard, ...runbooks.map((r) => r.expr)].map((e) =>
      e
        .replaceAll("$__rate_interval", "5m")
        .replaceAll("$job", ".+")
        .replace(/#[^\n]*/g, ""),
    );
    const dir = mkdtempSync(join(tmpdir(), "cw-promql-"));
    try {
      const rulesFile = join(dir, "exprs.yml");
      const body = exprs.map((e, i) => `      - record: check:expr_${i}\n        expr: ${JSON.stringify(e)}`);
      writeFileSync(rulesFile, `groups:\n  - name: exprs\n    rules:\n${body.join("\n")}\n`);
      const out = execFileSync("promtool", ["check", "rules", rulesFile], { encoding: "utf8" });
      expect(out).toContain(`SUCCESS: ${exprs.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
