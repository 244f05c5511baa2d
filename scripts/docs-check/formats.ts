/**
 * Blocks that are data rather than programs: `json` must parse, an `http` exchange must request a
 * route the server has (and carry JSON that parses), a `promql` query may name only metrics and
 * labels a scrape of the service has. Each is what a reader copies into a tool that will reject it.
 */
import type { Block, Doc, Problem } from "./document.js";
import type { Known } from "./known.js";
import { checkRoute, expandUrlVars, HTTP_METHODS } from "./names.js";

/** Series that exist without our code: Prometheus' own. */
const PROMETHEUS_SERIES = new Set(["up", "ALERTS", "ALERTS_FOR_STATE"]);
const TARGET_LABELS = new Set(["job", "instance", "le", "quantile", "__name__", "alertname", "severity"]);
const PROMQL_KEYWORDS = new Set(
  "and or unless by without on ignoring group_left group_right bool offset sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio inf nan".split(
    " ",
  ),
);

export function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

export function checkJson(doc: Doc, block: Block): Problem[] {
  const error = jsonError(block.lines.join("\n"));
  return error ? [{ doc: doc.name, line: block.line, token: "json", reason: error }] : [];
}

export function checkPromql(known: Known, doc: Doc, block: Block): Problem[] {
  const problems: Problem[] = [];
  block.lines.forEach((raw, k) => {
    const line = block.line + k;
    let text = raw.replace(/#.*$/, "").replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
    const labels: string[] = [];
    text = text.replace(/\{([^}]*)\}/g, (_, inner: string) => {
      for (const m of inner.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1]!);
      return " ";
    });
    text = text.replace(
      /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
      (_, __, list: string) => {
        labels.push(
          ...list
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        );
        return " ";
      },
    );
    text = text.replace(/\[[^\]]*\]/g, " ");
    for (const label of labels) {
      if (!known.labels.has(label) && !TARGET_LABELS.has(label)) {
        problems.push({ doc: doc.name, line, token: label, reason: "no metric has this label" });
      }
    }
    for (const m of text.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()/g)) {
      const name = m[0];
      if (PROMQL_KEYWORDS.has(name) || known.metrics.has(name) || PROMETHEUS_SERIES.has(name)) continue;
      problems.push({
        doc: doc.name,
        line,
        token: name,
        reason: "no such metric in a scrape of createMetrics",
      });
    }
  });
  return problems;
}

export function checkHttp(known: Known, doc: Doc, block: Block): Problem[] {
  const problems: Problem[] = [];
  const first = block.lines.findIndex((l) => l.trim() !== "");
  const request = block.lines[first]?.match(new RegExp(`^(${HTTP_METHODS}) (\\S+)( HTTP/[\\d.]+)?$`));
  const response = block.lines[first]?.match(/^HTTP\/[\d.]+ \d{3}/);
  if (!request && !response) {
    problems.push({
      doc: doc.name,
      line: block.line + first,
      token: block.lines[first] ?? "",
      reason: "an http block starts with a request line (METHOD /path HTTP/1.1) or a status line",
    });
    return problems;
  }
  if (request) {
    const target = expandUrlVars(doc, request[2]!).replace(/^https?:\/\/[^/]+/, "");
    const reason = checkRoute(known, target, request[1]);
    if (reason)
      problems.push({ doc: doc.name, line: block.line + first, token: `${request[1]} ${target}`, reason });
  }
  const blank = block.lines.findIndex((l, k) => k > first && l.trim() === "");
  const headers = block.lines.slice(first + 1, blank < 0 ? undefined : blank);
  const body = blank < 0 ? "" : block.lines.slice(blank + 1).join("\n");
  if (body.trim() !== "" && headers.some((h) => /^content-type:.*json/i.test(h))) {
    const error = jsonError(body);
    if (error) problems.push({ doc: doc.name, line: block.line + blank + 1, token: "body", reason: error });
  }
  return problems;
}
