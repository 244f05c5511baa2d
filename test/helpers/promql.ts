/** Reading PromQL out of the dashboard, the alert rules and the runbooks; shared by the tests. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "../..");
export const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

export const SPEC_METRICS = [
  "webhook_deliveries_total",
  "webhook_delivery_duration_seconds",
  "webhook_failures_total",
  "webhook_queue_depth",
  "webhook_queue_enqueued_total",
  "webhook_queue_dequeued_total",
  "webhook_circuit_breaker_state",
  "webhook_circuit_breaker_opened_total",
];

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "inf",
  "nan",
  "atan2",
]);

/** Metric names in a PromQL expression (Grafana variables allowed). Functions and labels are not names. */
export function metricNames(expr: string): Set<string> {
  if (expr.includes("__name__")) throw new Error(`__name__ selectors hide the metric name: ${expr}`);
  const stripped = expr
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`/g, '""')
    .replace(/#[^\n]*/g, " ")
    .replace(/\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return names;
}

/** Every `expr` of the dashboard, and the metric of each `label_values(metric, label)` variable. */
export function dashboardExprs(): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const item of node) walk(item);
    else if (node && typeof node === "object") {
      for (const [key, value] of Object.entries(node)) {
        if (key === "expr" && typeof value === "string") out.push(value);
        else if (key === "definition" && typeof value === "string") {
          const lv = /^label_values\(\s*(.+?)\s*,\s*\w+\s*\)$/.exec(value);
          if (!lv) throw new Error(`unsupported variable query: ${value}`);
          out.push(lv[1]!);
        } else walk(value);
      }
    }
  };
  walk(JSON.parse(read("deploy/grafana/continuum-webhooks.json")));
  return out;
}

/** The `expr:` values of a rules file as this repository writes it (inline or `|` block). */
export function ruleExprs(yaml: string): string[] {
  const lines = yaml.split("\n");
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!m) return;
    if (m[2] !== "|" && m[2] !== ">") {
      out.push(m[2]!.replace(/^(['"])(.*)\1$/, "$2"));
      return;
    }
    const body: string[] = [];
    for (const next of lines.slice(i + 1)) {
      if (next.trim() !== "" && next.search(/\S/) <= m[1]!.length) break;
      body.push(next);
    }
    out.push(body.join("\n").trim());
  });
  return out;
}

/** The runbooks' ```promql blocks, split into expressions (an indented line continues the previous). */
export function runbookExprs(): Array<{ file: string; expr: string }> {
  const dir = join(ROOT, "docs/runbooks");
  const out: Array<{ file: string; expr: string }> = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".md"))) {
    for (const block of readFileSync(join(dir, file), "utf8").matchAll(/```promql\n([\s\S]*?)```/g)) {
      for (const line of block[1]!.split("\n")) {
        if (line.trim() === "" || line.trim().startsWith("#")) continue;
        const last = out[out.length - 1];
        if (/^\s/.test(line) && last?.file === file) last.expr += `\n${line}`;
        else out.push({ file, expr: line });
      }
    }
  }
  return out;
}

/** Series names present in a scrape (histograms appear as their _bucket/_sum/_count). */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}
