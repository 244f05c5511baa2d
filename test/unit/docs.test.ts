/**
 * The documents a reader follows — README.md, docs/INTEGRATION.md, SECURITY.md, docs/runbooks/*.md
 * — against the code (docs/EVENTS.md has its own test, events-doc.test.ts).
 *
 * 1. Every fenced block is run or checked, by its language:
 *    - ts/typescript, js/javascript: type-checked together in one strict TypeScript program, one
 *      file per block (`continuum-webhooks` and `continuum-webhooks/verify` resolve to src/); a JS
 *      block must be plain JavaScript, checked with checkJs except for missing annotations.
 *    - python: compiled and executed with /usr/bin/python3 as a module not named `__main__` (so
 *      imports and definitions run, what sits under `if __name__ == "__main__":` does not), with
 *      every non-loopback connection refused.
 *    - json parses; http: the request line's route exists, a JSON body parses.
 *    - sh/bash/shell/console: `bash -n`, then every command: `continuum-webhooks …` (also
 *      `npx continuum-webhooks`, `node bin/continuum-webhooks.js`) parses with the real commander
 *      program; `curl`'s method and path match a route the server registers; `npm` names a script.
 *    - promql: every metric and label name exists in a scrape of createMetrics.
 *    - text: only the checks of part 2 (plus: a `continuum-webhooks …` synopsis names real verbs
 *      and flags). Any other language, or none, fails: nothing enters the docs unchecked.
 * 2. Every CLI flag, environment variable, route and `webhook_*` metric named anywhere, prose
 *    included, exists in the code.
 *
 * Each problem is reported as `file:line: token — reason`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, registeredRoutes } from "../../src/api/server.js";
import { ENV_VARS, loadConfig } from "../../src/config.js";
import { EngineEvents } from "../../src/engine-events.js";
import { createLogger } from "../../src/logger.js";
import { createMetrics } from "../../src/metrics.js";
import { startTestEngine } from "../helpers/engine.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PYTHON = "/usr/bin/python3";
const DOCS = [
  "README.md",
  "docs/INTEGRATION.md",
  "SECURITY.md",
  ...readdirSync(join(ROOT, "docs/runbooks"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/runbooks/${f}`),
];

/** Variables the docs may name that are not the service's own configuration. */
const EXTERNAL_ENV = new Set([
  "NODE_ENV",
  "PATH",
  "TEST_DATABASE_URL",
  "TEST_REDIS_URL",
  "REQUIRE_SERVICES",
  // Read by the example receivers and producers, not by the service.
  "CONTINUUM_WEBHOOK_SECRET",
  "CONTINUUM_API_KEY",
  "CONTINUUM_WEBHOOKS_URL",
  // Shell placeholders of the examples (`$WEBHOOK_ID`).
  "WEBHOOK_ID",
  "DELIVERY_ID",
]);
/** Series that exist without our code: Prometheus' own. */
const PROMETHEUS_SERIES = new Set(["up", "ALERTS", "ALERTS_FOR_STATE"]);
const TARGET_LABELS = new Set(["job", "instance", "le", "quantile", "__name__", "alertname", "severity"]);
const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);
const TS_LANGS = new Set(["ts", "typescript"]);
const JS_LANGS = new Set(["js", "javascript"]);
const KNOWN_LANGS = new Set([
  ...SHELL_LANGS,
  ...TS_LANGS,
  ...JS_LANGS,
  "python",
  "json",
  "http",
  "promql",
  "text",
]);
/** Commands whose flags are their own business (a `--since` in `journalctl --since` is not ours). */
const OTHER_TOOLS = new Set(
  "curl npm npx node journalctl systemctl docker jq psql redis-cli git python python3 pip kubectl promtool tsc vitest bash sh go ruby gem bundle apt apt-get uvicorn flask gunicorn openssl".split(
    " ",
  ),
);
const NPM_BUILTINS = new Set(
  "ci install i exec x pack publish version audit ls outdated update init".split(" "),
);
const HTTP_METHODS = "GET|HEAD|POST|PUT|PATCH|DELETE";

// ---------------------------------------------------------------------------------------------
// Reading a document

interface Block {
  doc: string;
  lang: string;
  /** 1-based line of the block's first content line. */
  line: number;
  lines: string[];
}
interface Doc {
  name: string;
  blocks: Block[];
  /** Lines outside fenced blocks, 1-based. */
  prose: Array<{ line: number; text: string }>;
  /** Shell variables assigned a URL in the document (`export API=http://…/api/v1`) → its path. */
  urlVars: Map<string, string>;
}

function parseDoc(name: string, text: string): Doc {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  const prose: Doc["prose"] = [];
  let open: { fence: string; indent: number; block: Block } | null = null;
  lines.forEach((raw, i) => {
    if (open) {
      const close = raw.match(/^(\s*)(`{3,}|~{3,})\s*$/);
      if (close && close[2]!.startsWith(open.fence)) open = null;
      else open.block.lines.push(raw.slice(Math.min(open.indent, raw.search(/\S|$/))));
      return;
    }
    const fence = raw.match(/^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/);
    if (fence) {
      const block = { doc: name, lang: fence[3]!.toLowerCase(), line: i + 2, lines: [] };
      blocks.push(block);
      open = { fence: fence[2]!, indent: fence[1]!.length, block };
    } else prose.push({ line: i + 1, text: raw });
  });
  const urlVars = new Map<string, string>();
  for (const m of text.matchAll(/\b([A-Za-z_]\w*)=["']?https?:\/\/[^/\s"']+(\/[^\s"']*)?/g)) {
    urlVars.set(m[1]!, (m[2] ?? "").replace(/\/$/, ""));
  }
  return { name, blocks, prose, urlVars };
}

// ---------------------------------------------------------------------------------------------
// What exists: the code's names

interface Route {
  method: string;
  url: string;
  pattern: RegExp;
}
interface Known {
  buildProgram: () => Command;
  flags: Set<string>;
  routes: Route[];
  envVars: Set<string>;
  envPrefixes: Set<string>;
  envSuffixes: Set<string>;
  metrics: Set<string>;
  labels: Set<string>;
  /** Database tables and columns: `webhook_deliveries`, `webhook_id` are names but not metrics. */
  schemaNames: Set<string>;
  scripts: Set<string>;
}

interface Problem {
  doc: string;
  line: number;
  token: string;
  reason: string;
}
const show = (p: Problem) => `${p.doc}:${p.line}: ${p.token} — ${p.reason}`;

async function loadBuildProgram(): Promise<() => Command> {
  return (await import("../../src/program.js")).buildProgram;
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

function longFlags(cmd: Command): Set<string> {
  const out = new Set(["--help"]);
  if (cmd.parent === null) out.add("--version");
  for (const o of cmd.options) if (o.long) out.add(o.long);
  return out;
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

async function loadKnown(): Promise<{ known: Known; close(): Promise<void> }> {
  const buildProgram = await loadBuildProgram();
  const flags = new Set(allCommands(buildProgram()).flatMap((c) => [...longFlags(c)]));

  const te = await startTestEngine({ workers: false });
  const app = await buildServer({
    store: te.store,
    logger: createLogger("silent"),
    engine: te.engine,
    config: loadConfig({}),
  });
  await app.ready();
  const routes = registeredRoutes(app).map((r) => ({ ...r, pattern: routePattern(r.url) }));
  const schemaNames = new Set<string>();
  if (te.store.raw.kind === "sqlite") {
    const db = te.store.raw.sqlite;
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{
      name: string;
    }>;
    for (const { name } of tables) {
      schemaNames.add(name);
      const columns = db.prepare(`PRAGMA table_info("${name}")`).all() as Array<{ name: string }>;
      for (const c of columns) schemaNames.add(c.name);
    }
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
    envPrefixes: new Set(["CONTINUUM", "TEST", ...multiword.map((v) => v.split("_")[0]!)]),
    envSuffixes: new Set(multiword.map((v) => v.split("_").at(-1)!)),
    metrics: names,
    labels,
    schemaNames,
    scripts: new Set(
      Object.keys(
        (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: object }).scripts,
      ),
    ),
  };
  return {
    known,
    async close() {
      await app.close();
      await te.cleanup();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Names in any text (part 2)

function checkRoute(known: Known, path: string, method: string | undefined): string | null {
  const clean = path.split(/[?#]/)[0]!.replace(/[.,;:]+$/, "");
  if (/^\/api\/v1\/?$/.test(clean)) return null; // the API's base path, as in "routes under /api/v1"
  const matching = known.routes.filter((r) => r.pattern.test(clean));
  if (matching.length === 0) return "no such route in the server (registeredRoutes)";
  if (method && !matching.some((r) => r.method === method)) {
    return `the route exists but not for ${method} (${[...new Set(matching.map((r) => r.method))].join(", ")})`;
  }
  return null;
}

/** Variables assigned a URL in any document (the runbooks share their README's `$API`). */
const sharedUrlVars = new Map<string, string>();

/** `$API` → `/api/v1` when the document (or another one) assigned API a URL. */
function expandUrlVars(doc: Doc, text: string): string {
  return text.replace(
    /\$\{?([A-Za-z_]\w*)\}?(?=\/)/g,
    (all, name: string) => doc.urlVars.get(name) ?? sharedUrlVars.get(name) ?? all,
  );
}

const URL_RE = /https?:\/\/(\[[^\]]+\]|[^\s/"'`)<>:]+)(:\d+)?(\/[^\s"'`)<>\]]*)?/g;
const BARE_ROUTE_RE =
  /(?<=^|[\s`'"([={}])\/(?:api\/v1|webhooks|events|health|metrics|openapi\.json|docs)(?![\w.-])[^\s"'`)<>\],]*/g;
const SERVICE_ROOTS = /^\/(?:api\/|health\b|metrics\b|openapi\.json\b|docs\b)/;

/** Routes named in one line: absolute URLs of the service, and bare paths at a word boundary. */
function routesIn(doc: Doc, text: string): Array<{ path: string; method: string | undefined }> {
  const line = expandUrlVars(doc, text);
  const out: Array<{ path: string; method: string | undefined }> = [];
  const methodBefore = (index: number) =>
    line.slice(0, index).match(new RegExp(`\\b(${HTTP_METHODS})\\s+\`?$`))?.[1];
  for (const m of line.matchAll(URL_RE)) {
    const path = m[3];
    // An origin alone, or a base URL given to a variable (`API=http://…/api/v1`), is no route.
    if (path === undefined || /[A-Za-z_]\w*=["']?$/.test(line.slice(0, m.index))) continue;
    const loopbackService =
      /^(127\.0\.0\.1|localhost|\[::1\])$/.test(m[1]!) && /^:(8080|9090)$/.test(m[2] ?? "");
    if (loopbackService || SERVICE_ROOTS.test(path)) {
      out.push({ path: path.replace(/[.,;:]+$/, ""), method: methodBefore(m.index) });
    }
  }
  const withoutUrls = line.replace(URL_RE, (s) => " ".repeat(s.length));
  for (const m of withoutUrls.matchAll(BARE_ROUTE_RE)) {
    const bare = m[0].replace(/[.,;:]+$/, "");
    const path = /^\/(webhooks|events)/.test(bare) ? `/api/v1${bare}` : bare;
    out.push({ path, method: methodBefore(m.index) });
  }
  return out;
}

function isEnvCandidate(known: Known, name: string): boolean {
  const words = name.split("_");
  return known.envPrefixes.has(words[0]!) || known.envSuffixes.has(words.at(-1)!);
}

/** Env vars, routes and metric names in one line of any kind. */
function checkNames(known: Known, doc: Doc, line: number, text: string): Problem[] {
  const problems: Problem[] = [];
  const add = (token: string, reason: string) => problems.push({ doc: doc.name, line, token, reason });
  for (const m of text.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)) {
    const name = m[0];
    if (isEnvCandidate(known, name) && !known.envVars.has(name) && !EXTERNAL_ENV.has(name)) {
      add(name, "not an environment variable of the service (ENV_VARS in src/config.ts)");
    }
  }
  for (const { path, method } of routesIn(doc, text)) {
    const reason = checkRoute(known, path, method);
    if (reason) add(method ? `${method} ${path}` : path, reason);
  }
  for (const m of text.matchAll(/\bwebhook_[a-z0-9_]+\b/g)) {
    const name = m[0];
    if (!known.metrics.has(name) && !known.labels.has(name) && !known.schemaNames.has(name)) {
      add(name, "no such metric (nor metric label, table or column) in the code");
    }
  }
  return problems;
}

/**
 * `--flags` named in prose or a text block: a synopsis (an inline `continuum-webhooks …` span, or a
 * text block's line starting with the command) is checked against its verb, the rest against all.
 */
function checkFlagsInText(known: Known, doc: Doc, line: number, text: string, block: boolean): Problem[] {
  const problems: Problem[] = [];
  let rest = text;
  for (const span of text.match(/`[^`]+`/g) ?? []) {
    const inner = span.slice(1, -1).trim();
    rest = rest.replace(span, " ");
    const words = inner.split(/\s+/);
    const cli = cliArgs(words.map((w) => w.replace(/^\$\(/, "")));
    if (cli) problems.push(...checkSynopsis(known, doc, line, cli));
    else if (OTHER_TOOLS.has(words[0]!)) problems.push(...checkShellText(known, doc, line, inner));
    else problems.push(...unknownFlags(known, doc, line, inner));
  }
  const synopsis = block ? cliArgs(rest.trim().split(/\s+/)) : null;
  problems.push(
    ...(synopsis ? checkSynopsis(known, doc, line, synopsis) : unknownFlags(known, doc, line, rest)),
  );
  return problems;
}

function unknownFlags(known: Known, doc: Doc, line: number, text: string): Problem[] {
  return [...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)]
    .filter((m) => !known.flags.has(m[0]))
    .map((m) => ({ doc: doc.name, line, token: m[0], reason: "no command of buildProgram() has this flag" }));
}

/** The arguments after the program, when `words` invoke continuum-webhooks; else null. */
function cliArgs(words: string[]): string[] | null {
  const [a, b] = words;
  if (a === "continuum-webhooks") return words.slice(1);
  if (a === "npx" && b === "continuum-webhooks") return words.slice(2);
  if (a === "node" && /^(\.\/)?bin\/continuum-webhooks\.js$/.test(b ?? "")) return words.slice(2);
  if (/^(\.\/)?bin\/continuum-webhooks\.js$/.test(a ?? "")) return words.slice(1);
  return null;
}

/** A usage line such as `api-key create --user ID [--admin]`: real verbs, and flags of that verb. */
function checkSynopsis(known: Known, doc: Doc, line: number, args: string[]): Problem[] {
  const problems: Problem[] = [];
  let cmd = known.buildProgram();
  let verbs = true;
  for (const word of args) {
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (verbs && sub) {
      cmd = sub;
      continue;
    }
    if (verbs && cmd.commands.length > 0 && /^[a-z][\w-]*$/.test(word)) {
      problems.push({ doc: doc.name, line, token: word, reason: `not a command of ${cmd.name()}` });
      return problems;
    }
    verbs = false;
    const flags = longFlags(cmd);
    for (const m of word.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
      if (!flags.has(m[0])) {
        problems.push({ doc: doc.name, line, token: m[0], reason: `not a flag of "${cmd.name()}"` });
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Shell

interface ShellParse {
  commands: string[][];
  incomplete: boolean;
}

/** Words of each simple command, `$(…)` bodies included as commands of their own; comments dropped. */
function shellSplit(text: string): ShellParse {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  let i = 0;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = c === "'" ? text.indexOf("'", i + 1) : findDoubleQuoteEnd(text, i + 1);
      if (end < 0) return { commands, incomplete: true };
      const inner = text.slice(i + 1, end);
      if (c === '"') for (const sub of substitutions(inner)) commands.push(...shellSplit(sub).commands);
      word = (word ?? "") + inner;
      i = end + 1;
    } else if (c === "$" && text[i + 1] === "(") {
      const end = matchParen(text, i + 1);
      if (end < 0) return { commands, incomplete: true };
      commands.push(...shellSplit(text.slice(i + 2, end)).commands);
      word = `${word ?? ""}${text.slice(i, end + 1)}`;
      i = end + 1;
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + text[i + 1];
      i += 2;
    } else if (c === "#" && word === null) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
    } else if (/[;&|\n()]/.test(c)) {
      endCommand();
      i += 1;
    } else if (/\s/.test(c)) {
      endWord();
      i += 1;
    } else {
      word = (word ?? "") + c;
      i += 1;
    }
  }
  endCommand();
  return { commands, incomplete: false };
}

function findDoubleQuoteEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "$" && text[i + 1] === "(") {
      i = matchParen(text, i + 1);
      if (i < 0) return -1;
    } else if (text[i] === '"') return i;
  }
  return -1;
}

function matchParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i += 1) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = c === "'" ? text.indexOf("'", i + 1) : findDoubleQuoteEnd(text, i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === "(") depth += 1;
    else if (c === ")" && --depth === 0) return i;
  }
  return -1;
}

function substitutions(text: string): string[] {
  const out: string[] = [];
  for (let i = text.indexOf("$("); i >= 0; i = text.indexOf("$(", i + 1)) {
    const end = matchParen(text, i + 1);
    if (end > 0) out.push(text.slice(i + 2, end));
  }
  return out;
}

const SHELL_KEYWORDS = new Set(
  "if then else elif fi for while until do done case esac ! time export sudo env exec".split(" "),
);

/** Static checks of each command in a piece of shell (part 1's `sh` rules), with no CLI parsing. */
function checkShellText(known: Known, doc: Doc, line: number, text: string): Problem[] {
  return shellCommands(text).flatMap((words) => checkCommand(known, doc, line, words).sync);
}

function shellCommands(text: string): string[][] {
  return shellSplit(text).commands.map((words) => {
    let k = 0;
    while (k < words.length && (SHELL_KEYWORDS.has(words[k]!) || /^[A-Za-z_]\w*=/.test(words[k]!))) k += 1;
    return words.slice(k);
  });
}

/** `sync`: problems found without commander; `cli`: arguments to parse with the real program. */
function checkCommand(
  known: Known,
  doc: Doc,
  line: number,
  words: string[],
): { sync: Problem[]; cli: string[] | null } {
  const problems: Problem[] = [];
  const add = (token: string, reason: string) => problems.push({ doc: doc.name, line, token, reason });
  const cli = cliArgs(words);
  if (cli) return { sync: [], cli };
  const [tool, ...args] = words;
  if (tool === "curl") {
    let method: string | undefined;
    let url: string | undefined;
    for (let k = 0; k < args.length; k += 1) {
      const a = args[k]!;
      if (a === "-X" || a === "--request") method = args[++k];
      else if (/^-X[A-Z]+$/.test(a)) method = a.slice(2);
      else if (/^(-d|--data|--data-raw|--data-binary|--json|-F|--form)$/.test(a)) {
        method ??= "POST";
        const data = args[++k] ?? "";
        const error = /^\s*[[{]/.test(data) && !data.includes("$") ? jsonError(data) : null;
        if (error) add(data, `curl body: ${error}`);
      } else if (a === "-I" || a === "--head") method = "HEAD";
      else if (/^(-H|--header|-o|--output|-w|--write-out|-u|--user|-m|--max-time|-A)$/.test(a)) k += 1;
      else if (!a.startsWith("-")) url ??= a;
    }
    if (url === undefined) {
      add("curl", "no URL");
    } else {
      const expanded = expandUrlVars(doc, url);
      const m = expanded.match(/^https?:\/\/[^/]+(\/.*)?$/);
      const path = m ? (m[1] ?? "/") : expanded.startsWith("/") ? expanded : null;
      if (path === null) add(url, "cannot tell the path: assign the variable a URL in this document");
      else {
        const reason = checkRoute(known, path, method ?? "GET");
        if (reason) add(`${method ?? "GET"} ${path}`, reason);
      }
    }
  } else if (tool === "npm") {
    const [sub, script] = args;
    if (sub === "run" || sub === "run-script") {
      if (script === undefined || !known.scripts.has(script))
        add(`npm run ${script}`, "no such script in package.json");
    } else if (sub === "test" || sub === "t" || sub === "start") {
      if (!known.scripts.has(sub === "t" ? "test" : sub)) add(`npm ${sub}`, "no such script in package.json");
    } else if (sub === undefined || !NPM_BUILTINS.has(sub)) {
      add(`npm ${sub}`, "not an npm command the docs are expected to use");
    }
  }
  return { sync: problems, cli: null };
}

function silence(cmd: Command): Command {
  for (const c of allCommands(cmd)) {
    c.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
    c.exitOverride();
    if ((c as unknown as { _actionHandler: unknown })._actionHandler) c.action(() => {});
  }
  return cmd;
}

async function parseCli(known: Known, args: string[]): Promise<string | null> {
  try {
    await silence(known.buildProgram()).parseAsync(args, { from: "user" });
    return null;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (!e.code?.startsWith("commander.")) throw err;
    return e.exitCode === 0 ? null : (e.message ?? e.code);
  }
}

/** Logical lines of a shell block: continuations and multi-line quotes joined, console prompts read. */
function logicalLines(block: Block): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let current: { line: number; text: string } | null = null;
  let inCommand = block.lang !== "console";
  block.lines.forEach((raw, k) => {
    let text = raw;
    if (block.lang === "console") {
      if (current === null) {
        inCommand = raw.startsWith("$ ");
        if (!inCommand) return;
        text = raw.slice(2);
      } else text = raw.replace(/^> /, "");
    }
    if (!inCommand) return;
    if (current === null) current = { line: block.line + k, text };
    else if (current.text.endsWith("\\")) current.text = `${current.text.slice(0, -1)} ${text}`;
    else current.text = `${current.text}\n${text}`;
    if (!current.text.endsWith("\\") && !shellSplit(current.text).incomplete) {
      out.push(current);
      current = null;
    }
  });
  if (current) out.push(current);
  return out;
}

async function checkShellBlock(known: Known, doc: Doc, block: Block): Promise<Problem[]> {
  const problems: Problem[] = [];
  const lines = logicalLines(block);
  const syntax = spawnSync("bash", ["-n"], { input: lines.map((l) => l.text).join("\n"), encoding: "utf8" });
  if (syntax.status !== 0) {
    problems.push({ doc: doc.name, line: block.line, token: "bash -n", reason: syntax.stderr.trim() });
  }
  for (const { line, text } of lines) {
    for (const words of shellCommands(text)) {
      const { sync, cli } = checkCommand(known, doc, line, words);
      problems.push(...sync);
      if (cli) {
        const error = await parseCli(known, cli);
        if (error) problems.push({ doc: doc.name, line, token: words.join(" "), reason: error });
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// PromQL, HTTP, JSON

function checkPromql(known: Known, doc: Doc, block: Block): Problem[] {
  const problems: Problem[] = [];
  const keywords = new Set(
    "and or unless by without on ignoring group_left group_right bool offset sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio inf nan".split(
      " ",
    ),
  );
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
      if (keywords.has(name) || known.metrics.has(name) || PROMETHEUS_SERIES.has(name)) continue;
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

function checkHttp(known: Known, doc: Doc, block: Block): Problem[] {
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

function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Code blocks checked by their compilers, all at once

const TMP = join(ROOT, "test", ".tmp-docs", String(process.pid));

function slug(block: Block): string {
  return `${block.doc.replace(/[^A-Za-z0-9]+/g, "_")}_L${block.line}`;
}

/** One strict program for every TypeScript and JavaScript block. */
function typecheck(blocks: Block[]): Problem[] {
  if (blocks.length === 0) return [];
  const byFile = new Map<string, Block>();
  for (const block of blocks) {
    const file = join(TMP, `${slug(block)}.${TS_LANGS.has(block.lang) ? "ts" : "mjs"}`);
    // `export {}` makes every block a module, so top-level await is allowed.
    writeFileSync(file, `${block.lines.join("\n")}\nexport {};\n`);
    byFile.set(file, block);
  }
  writeFileSync(join(TMP, "package.json"), '{ "type": "module" }\n');
  const src = (f: string) => join(ROOT, "src", f);
  writeFileSync(
    join(TMP, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2023"],
        types: ["node"],
        strict: true,
        noUncheckedIndexedAccess: true,
        allowJs: true,
        checkJs: true,
        skipLibCheck: true,
        noEmit: true,
        paths: { "continuum-webhooks": [src("index.ts")], "continuum-webhooks/verify": [src("verify.ts")] },
      },
      files: [...byFile.keys()],
    }),
  );
  const config = ts.getParsedCommandLineOfConfigFile(
    join(TMP, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!config) throw new Error("cannot read the temporary tsconfig.json");
  const program = ts.createProgram(config.fileNames, config.options);
  const problems: Problem[] = [];
  for (const d of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push({
      doc: "tsconfig",
      line: 0,
      token: `TS${d.code}`,
      reason: ts.flattenDiagnosticMessageText(d.messageText, " "),
    });
  }
  for (const [file, block] of byFile) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`${file} is not in the program`);
    for (const d of ts.getPreEmitDiagnostics(program, source)) {
      // A JS block is JavaScript: it need not spell out types TypeScript cannot infer.
      if (file.endsWith(".mjs") && d.code >= 7000 && d.code < 8000) continue;
      const at = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line;
      problems.push({
        doc: block.doc,
        line: block.line + at,
        token: `TS${d.code}`,
        reason: ts.flattenDiagnosticMessageText(d.messageText, " "),
      });
    }
  }
  // The blocks must really be checked against src/, not against a stale dist/.
  for (const [name, target] of [
    ["continuum-webhooks", "index.ts"],
    ["continuum-webhooks/verify", "verify.ts"],
  ] as const) {
    const resolved = ts.resolveModuleName(name, join(TMP, "x.ts"), config.options, ts.sys).resolvedModule;
    if (resolved?.resolvedFileName !== src(target)) {
      problems.push({
        doc: "tsconfig",
        line: 0,
        token: name,
        reason: `resolves to ${resolved?.resolvedFileName}`,
      });
    }
  }
  return problems;
}

const PY_DRIVER = `
import json, socket, sys, traceback
def _local(host):
    return host in ("localhost", "::1") or str(host).startswith("127.")
_getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *a, **k):
    if not _local(host):
        raise OSError("docs test: no network beyond loopback (%s)" % host)
    return _getaddrinfo(host, *a, **k)
def connect(self, address):
    if isinstance(address, tuple) and not _local(address[0]):
        raise OSError("docs test: no network beyond loopback (%s)" % (address[0],))
    return _connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
out = []
def check_vectors(path, verify):
    """A block defining verify_delivery(body, headers, secrets, now) must pass docs/test-vectors.json."""
    vectors = json.load(open(sys.argv[1], encoding="utf-8"))
    line = verify.__code__.co_firstlineno
    failures = []
    def fail(name, message):
        failures.append("vector %r: %s" % (name, message))
    for v in vectors["positive"]:
        for family, drop in (("both", ()), ("continuum", ("webhook-",)), ("standard", ("x-continuum-",))):
            headers = {k: h for k, h in v["headers"].items() if not k.lower().startswith(drop)}
            try:
                if verify(v["body"].encode("utf-8"), headers, [v["secret"]], v["now"]) != v["payload"]:
                    fail(v["name"], "%s headers: wrong payload" % family)
            except Exception as e:
                fail(v["name"], "%s headers: refused (%s: %s)" % (family, type(e).__name__, e))
    for v in vectors["negative"]:
        try:
            verify(v["body"].encode("utf-8"), v["headers"], [v["secret"]], v["now"])
            fail(v["name"], "accepted")
        except Exception as e:
            if getattr(e, "reason", None) != v["reason"]:
                fail(v["name"], "refused with %r, expected reason %r" % (getattr(e, "reason", e), v["reason"]))
    if failures:
        more = " (and %d more)" % (len(failures) - 3) if len(failures) > 3 else ""
        out.append({"file": path, "line": line, "error": "verify_delivery: " + "; ".join(failures[:3]) + more})
for path in sys.argv[2:]:
    source = open(path, encoding="utf-8").read()
    try:
        code = compile(source, path, "exec")
        namespace = {"__name__": "__doc_block__", "__file__": path}
        exec(code, namespace)
        verify = namespace.get("verify_delivery")
        if callable(verify):
            check_vectors(path, verify)
    except BaseException as e:
        line = getattr(e, "lineno", None)
        if not isinstance(e, SyntaxError):
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
            line = frames[-1].lineno if frames else None
        out.append({"file": path, "line": line or 1, "error": "%s: %s" % (type(e).__name__, e)})
print(json.dumps(out))
`;

function runPython(blocks: Block[]): Problem[] {
  if (blocks.length === 0) return [];
  if (!existsSync(PYTHON)) {
    // The project's convention for toolchains: say so, and fail only where CI requires them.
    const reason = `${PYTHON} is missing: ${blocks.length} python block(s) not run`;
    if (process.env.REQUIRE_SERVICES === "1") {
      return blocks.map((b) => ({ doc: b.doc, line: b.line, token: "python", reason }));
    }
    console.warn(`docs.test: ${reason} (REQUIRE_SERVICES=1 makes this a failure)`);
    return [];
  }
  const byFile = new Map<string, Block>();
  for (const block of blocks) {
    const file = join(TMP, `${slug(block)}.py`);
    writeFileSync(file, `${block.lines.join("\n")}\n`);
    byFile.set(file, block);
  }
  const vectors = join(ROOT, "docs", "test-vectors.json");
  const run = spawnSync(PYTHON, ["-c", PY_DRIVER, vectors, ...byFile.keys()], {
    encoding: "utf8",
    timeout: 20_000,
    cwd: TMP,
    env: { PATH: process.env.PATH ?? "", PYTHONDONTWRITEBYTECODE: "1" },
  });
  if (run.status !== 0) throw new Error(`python3 failed: ${run.stderr || run.error?.message}`);
  const results = JSON.parse(run.stdout) as Array<{ file: string; line: number; error: string }>;
  return results.map((r) => {
    const block = byFile.get(r.file)!;
    return { doc: block.doc, line: block.line + r.line - 1, token: "python", reason: r.error };
  });
}

// ---------------------------------------------------------------------------------------------
// One document

async function checkDoc(known: Known, doc: Doc): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const { line, text } of doc.prose) {
    problems.push(...checkNames(known, doc, line, text), ...checkFlagsInText(known, doc, line, text, false));
  }
  for (const block of doc.blocks) {
    block.lines.forEach((text, k) => {
      // A promql block's names are the promql checker's business.
      if (block.lang !== "promql") problems.push(...checkNames(known, doc, block.line + k, text));
      if (block.lang === "text") problems.push(...checkFlagsInText(known, doc, block.line + k, text, true));
    });
    if (!KNOWN_LANGS.has(block.lang)) {
      problems.push({
        doc: doc.name,
        line: block.line - 1,
        token: block.lang === "" ? "```" : `\`\`\`${block.lang}`,
        reason: `a fenced block needs a checked language: ${[...KNOWN_LANGS].join(", ")}`,
      });
    } else if (SHELL_LANGS.has(block.lang)) problems.push(...(await checkShellBlock(known, doc, block)));
    else if (block.lang === "promql") problems.push(...checkPromql(known, doc, block));
    else if (block.lang === "http") problems.push(...checkHttp(known, doc, block));
    else if (block.lang === "json") {
      const error = jsonError(block.lines.join("\n"));
      if (error) problems.push({ doc: doc.name, line: block.line, token: "json", reason: error });
    }
  }
  return problems;
}

async function checkDocs(known: Known, docs: Doc[]): Promise<Map<string, string[]>> {
  for (const doc of docs)
    for (const [k, v] of doc.urlVars) if (!sharedUrlVars.has(k)) sharedUrlVars.set(k, v);
  const problems: Problem[] = [];
  for (const doc of docs) problems.push(...(await checkDoc(known, doc)));
  const blocks = docs.flatMap((d) => d.blocks);
  mkdirSync(TMP, { recursive: true });
  try {
    problems.push(...typecheck(blocks.filter((b) => TS_LANGS.has(b.lang) || JS_LANGS.has(b.lang))));
    problems.push(...runPython(blocks.filter((b) => b.lang === "python")));
  } finally {
    rmSync(TMP, { recursive: true, force: true });
    try {
      rmdirSync(join(TMP, ".."));
    } catch {
      // Another run's directory is still there.
    }
  }
  // One report per mistake: a curl line's route is also seen by the name scan ("/x" and "GET /x"),
  // a promql block's metric by both checkers.
  const kept = problems.filter(
    (p) =>
      !problems.some(
        (q) =>
          q !== p &&
          q.doc === p.doc &&
          q.line === p.line &&
          q.token !== p.token &&
          q.token.endsWith(` ${p.token}`),
      ),
  );
  const byDoc = new Map<string, string[]>(docs.map((d) => [d.name, []]));
  const seen = new Set<string>();
  for (const p of kept.sort((a, b) => a.line - b.line)) {
    const key = show(p);
    if (seen.has(key)) continue;
    seen.add(key);
    byDoc.get(p.doc)?.push(show(p));
  }
  return byDoc;
}

// ---------------------------------------------------------------------------------------------

let known: Known;
let close: () => Promise<void> = async () => {};
let results: Map<string, string[]>;
let selfTest: string[];

const BAD_DOC = [
  "Set `WEBHOOK_TIMEOUT_MS` and pass `--timout 5s`; watch `webhook_deliveries_count`.", // 1
  "```sh", // 2
  "continuum-webhooks serve --no-such-flag", // 3
  "curl -s -X PUT http://127.0.0.1:8080/api/v1/webhooks/whk_1", // 4
  "curl -s http://127.0.0.1:8080/api/v1/hooks", // 5
  "npm run no-such-script", // 6
  "```", // 7
  "```ts", // 8
  'import { verifyWebhook } from "continuum-webhooks/verify";', // 9
  "const n: number = verifyWebhook({ body: '', headers: {}, secret: 1 });", // 10
  "```", // 11
  "```python", // 12
  "import no_such_module_here", // 13
  "```", // 14
  "```promql", // 15
  "sum by (endpoint) (rate(webhook_nope_total[5m]))", // 16
  "```", // 17
  "```yaml", // 18
  "a: 1", // 19
  "```", // 20
  "See `continuum-webhooks api-key create --user U --root` and GET /api/v1/events.", // 21
  "```python", // 22
  "def verify_delivery(body, headers, secrets, now=None):", // 23
  "    return {}", // 24
  "```", // 25
  "```bash", // 26
  "curl -s -X POST http://127.0.0.1:8080/api/v1/events -d '{\"event\": }'", // 27
  "continuum-webhooks api-key revoke", // 28
  "```", // 29
  "```", // 30
  "no language", // 31
  "```", // 32
  "```text", // 33
  "continuum-webhooks worker [--workers N] [--bogus]", // 34
  "```", // 35
  "```http", // 36
  "DELETE /api/v1/events HTTP/1.1", // 37
  "```", // 38
  "```console", // 39
  "$ continuum-webhooks migrate --nope", // 40
  "migrate: output lines are not commands --not-checked", // 41
  "```", // 42
  "```js", // 43
  "const x: number = 1;", // 44
  "```", // 45
].join("\n");

beforeAll(async () => {
  ({ known, close } = await loadKnown());
  const docs = DOCS.map((name) => {
    let text: string;
    try {
      text = readFileSync(join(ROOT, name), "utf8");
    } catch {
      text = "";
    }
    return parseDoc(name, text);
  });
  results = await checkDocs(known, [...docs, parseDoc("BAD.md", BAD_DOC)]);
  selfTest = results.get("BAD.md") ?? [];
}, 60_000);

afterAll(() => close());

describe("docs against the code", () => {
  it("the checker catches each kind of mistake (a deliberately wrong document)", () => {
    const expected: Array<[number, string]> = [
      [1, "WEBHOOK_TIMEOUT_MS"],
      [1, "--timout"],
      [1, "webhook_deliveries_count"],
      [3, "--no-such-flag"],
      [4, "PUT /api/v1/webhooks/whk_1"],
      [5, "GET /api/v1/hooks"],
      [6, "npm run no-such-script"],
      [10, "TS2322"],
      [13, "ModuleNotFoundError"],
      [16, "webhook_nope_total"],
      [18, "```yaml"],
      [21, "--root"],
      [21, "GET /api/v1/events"],
      [23, "verify_delivery: vector 'memory.created'"],
      [27, "curl body: not JSON"],
      [28, "missing required argument"],
      [30, "```"],
      [34, "--bogus"],
      [37, "DELETE /api/v1/events"],
      [40, "--nope"],
      [44, "TS8010"],
    ];
    const unmatched = [...selfTest];
    const python = existsSync(PYTHON) || process.env.REQUIRE_SERVICES === "1";
    for (const [line, token] of expected.filter(([line]) => python || (line !== 13 && line !== 23))) {
      const i = unmatched.findIndex((p) => p.startsWith(`BAD.md:${line}: `) && p.includes(token));
      expect(
        i,
        `expected a problem at BAD.md:${line} naming ${token}; got:\n${selfTest.join("\n")}`,
      ).not.toBe(-1);
      unmatched.splice(i, 1);
    }
    // …and nothing else: the line of console output, for one, is not a command.
    expect(unmatched).toEqual([]);
  });

  for (const name of DOCS) {
    it(`${name}: every block is checked, every name exists`, () => {
      expect(existsSync(join(ROOT, name)), `${name} is missing`).toBe(true);
      expect(results.get(name)).toEqual([]);
    });
  }
});
