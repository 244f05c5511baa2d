/**
 * What exists, read from the code itself rather than from a list that could drift: the CLI's
 * commands and flags (the real commander program), the server's routes (a real server's route
 * table), environment variables (ENV_VARS), metrics and labels (a scrape of createMetrics), table
 * and column names (a migrated SQLite store), npm scripts, and the variables the test harness reads.
 * This is the one file that imports the service's code.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { buildServer, registeredRoutes } from "../../src/api/server.js";
import { ENV_VARS, loadConfig } from "../../src/config.js";
import { EngineEvents } from "../../src/engine-events.js";
import { createLogger } from "../../src/logger.js";
import { createMetrics } from "../../src/metrics.js";
import { buildProgram } from "../../src/program.js";
import { startTestEngine } from "../../test/helpers/engine.js";
import { USAGE as CHAOS_USAGE } from "../chaos/args.js";
import { PACKAGE_JSON, ROOT, TEST_CODE } from "./sources.js";

export interface Route {
  method: string;
  url: string;
  pattern: RegExp;
}

export interface Known {
  buildProgram: () => Command;
  flags: Set<string>;
  routes: Route[];
  envVars: Set<string>;
  /** Variables the tests read (`process.env.X` in test/): not the service's, but real. */
  testEnvVars: Set<string>;
  envPrefixes: Set<string>;
  envSuffixes: Set<string>;
  metrics: Set<string>;
  labels: Set<string>;
  /** Database tables and columns: `webhook_deliveries`, `webhook_id` are names but not metrics. */
  schemaNames: Set<string>;
  scripts: Set<string>;
}

export function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

export function longFlags(cmd: Command): Set<string> {
  const out = new Set(["--help"]);
  if (cmd.parent === null) out.add("--version");
  for (const o of cmd.options) if (o.long) out.add(o.long);
  return out;
}

function testEnvVars(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      // Not the checker's own scratch files: code blocks of the docs, coming and going mid-walk.
      if (entry.isDirectory() && entry.name !== ".tmp-docs") walk(path);
      else if (entry.isFile() && entry.name.endsWith(".ts")) {
        const text = readFileSync(join(ROOT, path), "utf8");
        for (const m of text.matchAll(
          /process\.env(?:\.([A-Z_][A-Z0-9_]*)|\[["']([A-Z_][A-Z0-9_]*)["']\])/g,
        )) {
          names.add((m[1] ?? m[2])!);
        }
      }
    }
  };
  walk(TEST_CODE);
  return names;
}

function routePattern(url: string): RegExp {
  const source = url
    .split("/")
    .map((seg) =>
      seg === "*" ? ".*" : seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return new RegExp(`^${source}/?$`);
}

export async function loadKnown(): Promise<{ known: Known; close(): Promise<void> }> {
  const flags = new Set(allCommands(buildProgram()).flatMap((c) => [...longFlags(c)]));
  // `npm run chaos -- …` (scripts/chaos) has flags of its own, listed in its usage text.
  for (const m of CHAOS_USAGE.matchAll(/--[a-z][a-z-]*/g)) flags.add(m[0]);

  const te = await startTestEngine({ workers: false });
  const app = await buildServer({
    store: te.store,
    logger: createLogger("silent"),
    engine: te.engine,
    config: loadConfig({}),
  });
  await app.ready();
  const routes = registeredRoutes(app).map((r) => ({ ...r, pattern: routePattern(r.url) }));
  // Through Kysely's introspection, which every backend has, rather than one backend's catalogue.
  const schemaNames = new Set<string>();
  for (const table of await te.store.db.introspection.getTables({ withInternalKyselyTables: true })) {
    schemaNames.add(table.name);
    for (const column of table.columns) schemaNames.add(column.name);
  }

  const metrics = createMetrics({
    events: new EngineEvents(),
    queueDepth: async () => ({ high: 0, normal: 0, low: 0 }),
    breakerStates: async () => [],
  });
  const names = new Set<string>();
  for (const m of (await metrics.render()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === "histogram" || m[2] === "summary") {
      for (const s of ["_bucket", "_sum", "_count"]) names.add(m[1]! + s);
    }
  }
  const labels = new Set(
    metrics.registry
      .getMetricsAsArray()
      .flatMap((m) => (m as unknown as { labelNames?: string[] }).labelNames ?? []),
  );
  metrics.close();

  const multiword = ENV_VARS.filter((v) => v.includes("_"));
  const known: Known = {
    buildProgram,
    flags,
    routes,
    envVars: new Set<string>(ENV_VARS),
    testEnvVars: testEnvVars(),
    envPrefixes: new Set(["CONTINUUM", "TEST", ...multiword.map((v) => v.split("_")[0]!)]),
    envSuffixes: new Set(multiword.map((v) => v.split("_").at(-1)!)),
    metrics: names,
    labels,
    schemaNames,
    scripts: new Set(
      Object.keys(
        (JSON.parse(readFileSync(join(ROOT, PACKAGE_JSON), "utf8")) as { scripts: object }).scripts,
      ),
    ),
  };
  return {
    known,
    async close() {
      // The store's checkpoint thread is unref'd and its exit is all close() awaits: in a process
      // with nothing else pending (the CLI), Node would exit mid-close with status 13.
      const keepAlive = setInterval(() => {}, 1000);
      try {
        await app.close();
        await te.cleanup();
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}
