/**
 * `npm run bench` prints a table; `npm run bench -- --json` prints one JSON object per figure.
 * `npm run bench -- signing` runs only the benches whose name contains "signing";
 * `npm run bench -- engine:hanging` only the parts of "engine" whose name contains "hanging".
 * Every figure is reported beside a baseline measured in the same run, because this machine is
 * shared and noisy: absolute times drift, ratios much less.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Bench, Figure } from "./types.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes("--json");
const filters = args.filter((a) => !a.startsWith("--"));

const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
const all: Figure[] = [];
for (const file of files) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { default: Bench };
  const bench = mod.default;
  // "bench" or "bench:part": which filters name this bench, and which of its parts they ask for.
  const asked = filters
    .map((f) => f.split(":") as [string, string?])
    .filter(([b]) => bench.name.includes(b) || file.includes(b));
  if (filters.length > 0 && asked.length === 0) continue;
  const parts = asked.some(([, p]) => p === undefined) ? [] : asked.map(([, p]) => p!);
  const only = (part: string) => parts.length === 0 || parts.some((p) => part.includes(p));
  if (!json) process.stderr.write(`running ${bench.name}${parts.length ? ` (${parts.join(", ")})` : ""}…\n`);
  const figures = await bench.run(only);
  for (const f of figures) {
    all.push(f);
    if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
  }
}

if (!json) {
  const fmt = (n: number | null) =>
    n === null ? "-" : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3);
  const rows = all.map((f) => [f.name, fmt(f.value), f.unit, fmt(f.baseline), fmt(f.ratio), f.note ?? ""]);
  const head = ["figure", "value", "unit", "baseline", "ratio", "note"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}
