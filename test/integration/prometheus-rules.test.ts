/**
 * The alert rules pass `promtool check rules` and their own `promtool test rules` unit tests, and
 * each alert is complete: a `for:`, a severity, a summary, a description and a runbook that exists.
 * Without promtool the promtool tests are skipped, naming the package, unless REQUIRE_TOOLCHAINS=1
 * (CI) makes that a failure.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { needToolchain } from "../helpers/toolchains.js";

const ROOT = join(import.meta.dirname, "../..");
const RULES = "deploy/prometheus/alerts.yml";
const RULE_TESTS = "deploy/prometheus/alerts.test.yml";
/** Runbook links are paths in this repository: right wherever it is hosted or mirrored. */
const RUNBOOK_BASE = "docs/runbooks/";

function promtool(args: string[]): { code: number | null; output: string } {
  const r = spawnSync("promtool", args, { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

interface Alert {
  name: string;
  for?: string;
  severity?: string;
  summary?: string;
  description?: string;
  runbookUrl?: string;
}

/** The alerts of the rules file, read field by field from each `- alert:` block. */
function alerts(): Alert[] {
  const text = readFileSync(join(ROOT, RULES), "utf8");
  return text
    .split(/^\s*- alert:\s*/m)
    .slice(1)
    .map((block) => {
      const field = (re: RegExp) => re.exec(block)?.[1]?.trim();
      return {
        name: block.split("\n")[0]!.trim(),
        for: field(/^\s+for:\s*(\S+)/m),
        severity: field(/^\s+severity:\s*(\S+)/m),
        summary: field(/^\s+summary:\s*(.+)$/m),
        description: field(/^\s+description:\s*(.+)$/m),
        runbookUrl: field(/^\s+runbook_url:\s*(\S+)/m),
      };
    });
}

const kebab = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();

describe("Prometheus alert rules", () => {
  it("promtool check rules passes", (ctx) => {
    needToolchain(ctx, "promtool");
    const r = promtool(["check", "rules", RULES]);
    expect(r.output).toContain(`SUCCESS: ${alerts().length} rules found`);
    expect(r.code).toBe(0);
  });

  it("promtool test rules passes", (ctx) => {
    needToolchain(ctx, "promtool");
    const r = promtool(["test", "rules", RULE_TESTS]);
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("has the seed's seven alerts, critical and warning", () => {
    const bySeverity = (s: string) =>
      alerts()
        .filter((a) => a.severity === s)
        .map((a) => a.name)
        .sort();
    expect(bySeverity("critical")).toEqual([
      "WebhookCircuitBreakerOpen",
      "WebhookQueueDepthCritical",
      "WebhookSuccessRateCritical",
      "WebhookWorkerRestarting",
    ]);
    expect(bySeverity("warning")).toEqual([
      "WebhookLatencyHigh",
      "WebhookQueueDepthHigh",
      "WebhookSuccessRateLow",
    ]);
  });

  it("gives every alert a for:, a summary, a description and an existing runbook", () => {
    const index = readFileSync(join(ROOT, "docs/runbooks/README.md"), "utf8");
    for (const a of alerts()) {
      expect(a.for, a.name).toMatch(/^\d+[smh]$/);
      expect(a.summary, a.name).toBeTruthy();
      expect(a.description, a.name).toBeTruthy();
      const page = `${kebab(a.name)}.md`;
      expect(a.runbookUrl, a.name).toBe(`${RUNBOOK_BASE}${page}`);
      expect(existsSync(join(ROOT, a.runbookUrl!)), a.runbookUrl).toBe(true);
      const text = readFileSync(join(ROOT, "docs/runbooks", page), "utf8");
      expect(text.split("\n")[0], page).toBe(`# ${a.name}`);
      for (const section of ["## What it means", "## Confirm", "## Mitigate", "## Recover"]) {
        expect(text, `${page}: ${section}`).toContain(section);
      }
      expect(text, page).toContain("status=dead_letter");
      expect(index, `README links ${page}`).toContain(`(${page})`);
    }
  });

  it("every runbook link in deploy/ (rules, their tests, the dashboard) is a path that exists", () => {
    const files = [
      RULES,
      RULE_TESTS,
      ...readdirSync(join(ROOT, "deploy/grafana")).map((f) => `deploy/grafana/${f}`),
    ];
    const links: string[] = [];
    for (const file of files) {
      // Comments describe the convention with placeholders; the links are the rest.
      const text = readFileSync(join(ROOT, file), "utf8").replace(/^\s*#.*$/gm, "");
      for (const m of text.matchAll(/runbook_url:\s*(\S+)/g)) links.push(m[1]!);
      // A runbook reached through a host (github.com/…/docs/runbooks/…) breaks with the host.
      expect(text, file).not.toMatch(/https?:\/\/\S*runbooks/);
      for (const m of text.matchAll(/docs\/runbooks\/[\w.-]*/g)) links.push(m[0]);
    }
    expect(links.length).toBeGreaterThanOrEqual(2 * alerts().length);
    for (const link of links) {
      expect(link, link).toMatch(/^docs\/runbooks\/[\w.-]+\.md$/);
      expect(existsSync(join(ROOT, link)), link).toBe(true);
    }
  });

  it("unit-tests every alert, each both firing and silent", () => {
    const tests = readFileSync(join(ROOT, RULE_TESTS), "utf8");
    for (const a of alerts()) {
      const cases = tests
        .split(/^\s*- eval_time:/m)
        .filter((c) => new RegExp(`alertname: ${a.name}\\b`).test(c));
      expect(
        cases.some((c) => /exp_alerts: \[\]/.test(c)),
        `${a.name} silent case`,
      ).toBe(true);
      expect(
        cases.some((c) => /exp_labels:/.test(c)),
        `${a.name} firing case`,
      ).toBe(true);
    }
  });

  it("runbooks call only the HTTP API and CLI verbs of CONTRACT §1 and §6", () => {
    const routes = [
      "GET /webhooks",
      "GET /webhooks/{id}",
      "PATCH /webhooks/{id}",
      "POST /webhooks/{id}/test",
      "GET /webhooks/{id}/deliveries",
      "POST /webhooks/{id}/retry/{id}",
      "GET /webhooks/{id}/stats",
      "POST /webhooks/{id}/rotate-secret",
    ];
    const dir = join(ROOT, "docs/runbooks");
    const used = new Set<string>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".md"))) {
      const text = readFileSync(join(dir, file), "utf8");
      for (const line of text.replace(/\\\n\s*/g, " ").split("\n")) {
        for (const m of line.matchAll(/\$API(\/[^\s"`?]*)(\?[^\s"`]*)?/g)) {
          const method = /-X (\w+)/.exec(line)?.[1] ?? "GET";
          const path = m[1]!.replace(/\$\w+/g, "{id}");
          used.add(`${method} ${path}`);
          expect(routes, `${file}: ${method} ${path}`).toContain(`${method} ${path}`);
          for (const status of (m[2] ?? "").matchAll(/status=(\w+)/g)) {
            expect(["pending", "success", "failed", "dead_letter"]).toContain(status[1]);
          }
        }
      }
      const code = [...text.matchAll(/`([^`\n]+)`/g)].map((c) => c[1]!);
      for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) code.push(...block[1]!.split("\n"));
      for (const snippet of code) {
        const verb = /^\s*continuum-webhooks ([a-z-]+)/.exec(snippet)?.[1];
        if (verb)
          expect(["serve", "worker", "migrate", "api-key", "receiver"], `${file}: ${snippet}`).toContain(
            verb,
          );
      }
    }
    // The dead-letter recovery path is documented with both of its calls.
    expect(used).toContain("GET /webhooks/{id}/deliveries");
    expect(used).toContain("POST /webhooks/{id}/retry/{id}");
  });
});
