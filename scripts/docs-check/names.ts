/**
 * The names a document mentions anywhere, prose included: environment variables, routes,
 * `webhook_*` metrics, and `continuum-webhooks …` synopses with their verbs and flags. A doc that
 * names something the code does not have sends its reader after a thing that does not exist.
 */
import type { Doc, Problem } from "./document.js";
import { type Known, longFlags } from "./known.js";

/**
 * Variables the docs may name that are neither the service's configuration nor read by the tests
 * (those, TEST_DATABASE_URL or TEST_HIDE_TOOLCHAINS, come from the test code: known.testEnvVars).
 */
const EXTERNAL_ENV = new Set([
  "NODE_ENV",
  "PATH",
  // Read by the example receivers and producers, not by the service.
  "CONTINUUM_WEBHOOK_SECRET",
  "CONTINUUM_API_KEY",
  "CONTINUUM_WEBHOOKS_URL",
  // Shell placeholders of the examples (`$WEBHOOK_ID`).
  "WEBHOOK_ID",
  "DELIVERY_ID",
]);

export const HTTP_METHODS = "GET|HEAD|POST|PUT|PATCH|DELETE";

export function checkRoute(known: Known, path: string, method: string | undefined): string | null {
  const clean = path.split(/[?#]/)[0]!.replace(/[.,;:]+$/, "");
  if (/^\/api\/v1\/?$/.test(clean)) return null; // the API's base path, as in "routes under /api/v1"
  const matching = known.routes.filter((r) => r.pattern.test(clean));
  if (matching.length === 0) return "no such route in the server (registeredRoutes)";
  if (method && !matching.some((r) => r.method === method)) {
    return `the route exists but not for ${method} (${[...new Set(matching.map((r) => r.method))].join(", ")})`;
  }
  return null;
}

/** `$API` → `/api/v1` when the document (or another checked with it) assigned API a URL. */
export function expandUrlVars(doc: Doc, text: string): string {
  return text.replace(/\$\{?([A-Za-z_]\w*)\}?(?=\/)/g, (all, name: string) => doc.urlVars.get(name) ?? all);
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
export function checkNames(known: Known, doc: Doc, line: number, text: string): Problem[] {
  const problems: Problem[] = [];
  const add = (token: string, reason: string) => problems.push({ doc: doc.name, line, token, reason });
  for (const m of text.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)) {
    const name = m[0];
    const exists = known.envVars.has(name) || known.testEnvVars.has(name) || EXTERNAL_ENV.has(name);
    if (isEnvCandidate(known, name) && !exists) {
      add(name, "not an environment variable of the service (ENV_VARS in src/config.ts) nor of the tests");
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

export function unknownFlags(known: Known, doc: Doc, line: number, text: string): Problem[] {
  return [...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)]
    .filter((m) => !known.flags.has(m[0]))
    .map((m) => ({ doc: doc.name, line, token: m[0], reason: "no command of buildProgram() has this flag" }));
}

/** The arguments after the program, when `words` invoke continuum-webhooks; else null. */
export function cliArgs(words: string[]): string[] | null {
  const [a, b] = words;
  if (a === "continuum-webhooks") return words.slice(1);
  if (a === "npx" && b === "continuum-webhooks") return words.slice(2);
  if (a === "node" && /^(\.\/)?bin\/continuum-webhooks\.js$/.test(b ?? "")) return words.slice(2);
  if (/^(\.\/)?bin\/continuum-webhooks\.js$/.test(a ?? "")) return words.slice(1);
  return null;
}

/** A usage line such as `api-key create --user ID [--admin]`: real verbs, and flags of that verb. */
export function checkSynopsis(known: Known, doc: Doc, line: number, args: string[]): Problem[] {
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
