/**
 * The docs checker (scripts/docs-check) on small documents written for it: one wrong in every way
 * the checker knows, each mistake of which must be reported at its line, and nothing else; one
 * right in every language, which must pass. A checker that passed everything would leave
 * docs.test.ts passing forever; one that flagged correct text would be switched off.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkDocs, type Report } from "../../scripts/docs-check/check.js";
import { parseDoc, show } from "../../scripts/docs-check/document.js";
import { type Known, loadKnown } from "../../scripts/docs-check/known.js";
import { runPython } from "../../scripts/docs-check/python.js";
import { ROOT } from "../../scripts/docs-check/sources.js";
import { needToolchain } from "../helpers/toolchains.js";

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
  "Tests read `TEST_HIDE_TOOLCHAINS` and `TEST_DATABASE_URL`, not `TEST_HIDE_EVERYTHING`.", // 46
].join("\n");

/** What BAD_DOC must yield: a problem at each line naming each token, and no other problem. */
const EXPECTED: Array<[number, string]> = [
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
  [46, "TEST_HIDE_EVERYTHING"],
];
/** The lines whose problems only running the python blocks can find. */
const PYTHON_LINES = new Set([13, 23]);

const GOOD_DOC = [
  "Set `WEBHOOK_TIMEOUT` or pass `--workers 4` to `continuum-webhooks worker`; watch `webhook_deliveries_total`.", // 1
  "```sh", // 2
  "continuum-webhooks worker --workers 4 --metrics-port 9090", // 3
  "curl -s http://127.0.0.1:8080/health", // 4
  'curl -s -X POST http://127.0.0.1:8080/api/v1/events -d \'{"event": "memory.created"}\'', // 5
  "npm test", // 6
  "```", // 7
  "```ts", // 8
  'import { verifyWebhook } from "continuum-webhooks/verify";', // 9
  "export const check = (body: string, headers: Record<string, string>) =>", // 10
  '  verifyWebhook<{ id: string }>({ body, headers, secret: "whsec_x" }).id;', // 11
  "```", // 12
  "```js", // 13
  "export const twice = (n) => n * 2;", // 14
  "```", // 15
  "```json", // 16
  '{ "url": "https://example.com/hook", "events": ["*"] }', // 17
  "```", // 18
  "```http", // 19
  "GET /health HTTP/1.1", // 20
  "```", // 21
  "```promql", // 22
  "sum by (status) (rate(webhook_deliveries_total[5m]))", // 23
  "```", // 24
  "```text", // 25
  "continuum-webhooks worker [--workers N]", // 26
  "```", // 27
  "```python", // 28
  "def add(a, b):", // 29
  "    return a + b", // 30
  "```", // 31
].join("\n");

let known: Known;
let close: () => Promise<void> = async () => {};
let bad: Report;
let good: Report;

beforeAll(async () => {
  ({ known, close } = await loadKnown());
  bad = await checkDocs(known, [parseDoc("BAD.md", BAD_DOC)], { python: false });
  good = await checkDocs(known, [parseDoc("GOOD.md", GOOD_DOC)], { python: false });
}, 60_000);

afterAll(() => close());

/** Matches each expected [line, token] to one problem; returns the problems left over. */
function unmatched(problems: string[], expected: Array<[number, string]>, doc: string): string[] {
  const left = [...problems];
  for (const [line, token] of expected) {
    const i = left.findIndex((p) => p.startsWith(`${doc}:${line}: `) && p.includes(token));
    expect(i, `expected a problem at ${doc}:${line} naming ${token}; got:\n${problems.join("\n")}`).not.toBe(
      -1,
    );
    left.splice(i, 1);
  }
  return left;
}

describe("the docs checker", () => {
  it("catches each kind of mistake at its line (a deliberately wrong document), and nothing else", () => {
    const expected = EXPECTED.filter(([line]) => !PYTHON_LINES.has(line));
    // …and nothing else: the line of console output, for one, is not a command.
    expect(unmatched(bad.problems, expected, "BAD.md")).toEqual([]);
  });

  it("leaves the python blocks to the python runner, and says which", () => {
    expect(bad.notRun.map((b) => `${b.doc}:${b.line}`)).toEqual(["BAD.md:13", "BAD.md:23"]);
    expect(good.notRun.map((b) => `${b.doc}:${b.line}`)).toEqual(["GOOD.md:29"]);
  });

  it("runs the python blocks: a failed import, a verify_delivery that fails the vectors", (ctx) => {
    needToolchain(ctx, "python");
    const expected = EXPECTED.filter(([line]) => PYTHON_LINES.has(line));
    expect(unmatched(runPython(bad.notRun).map(show), expected, "BAD.md")).toEqual([]);
    expect(runPython(good.notRun).map(show)).toEqual([]);
  });

  it("passes a correct document in every language", () => {
    expect(good.problems).toEqual([]);
  });

  it("reads blocks at their lines: ~~~ fences, indented fences, an unclosed block", () => {
    const doc = parseDoc(
      "X.md",
      ["a", "~~~sh", "echo 1", "~~~", "- item", "  ```json", "  {}", "  ```", "```text", "open"].join("\n"),
    );
    expect(doc.blocks.map((b) => [b.lang, b.line, b.lines])).toEqual([
      ["sh", 3, ["echo 1"]],
      ["json", 7, ["{}"]],
      ["text", 10, ["open"]],
    ]);
    expect(doc.prose.map((p) => p.line)).toEqual([1, 5]);
  });

  it("lets a URL variable one document assigns stand in the others", async () => {
    const base = parseDoc("A.md", "export API=http://127.0.0.1:8080/api/v1\n");
    const user = parseDoc(
      "B.md",
      ["```sh", 'curl -s "$API/webhooks"', 'curl -s "$API/hooks"', "```"].join("\n"),
    );
    const together = await checkDocs(known, [base, user], { python: false });
    expect(together.problems).toEqual([
      "B.md:3: GET /api/v1/hooks — no such route in the server (registeredRoutes)",
    ]);
    const alone = await checkDocs(known, [user], { python: false });
    expect(alone.problems).toEqual([
      "B.md:2: $API/webhooks — cannot tell the path: assign the variable a URL in this document",
      "B.md:3: $API/hooks — cannot tell the path: assign the variable a URL in this document",
    ]);
  });
});

describe("npm run docs:check (scripts/docs-check/cli.ts)", () => {
  const dir = mkdtempSync(join(tmpdir(), "cw-docs-check-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const badFile = file(
    "bad.md",
    "Set `WEBHOOK_TIMEOUT_MS`.\n\n```python\nimport json\n```\n\n```yaml\na: 1\n```\n",
  );
  const pythonFile = file("python.md", "Fine.\n\n```python\nimport json\n```\n");
  const cleanFile = file(
    "clean.md",
    "Set `WEBHOOK_TIMEOUT`.\n\n```sh\ncurl -s http://127.0.0.1:8080/health\n```\n",
  );

  /** The command as a user runs it, with python hidden so the verdict is the same on any machine. */
  const cli = (files: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const { REQUIRE_TOOLCHAINS: _, ...inherited } = process.env;
      const child = spawn(process.execPath, ["--import", "tsx", "scripts/docs-check/cli.ts", ...files], {
        cwd: ROOT,
        env: { ...inherited, TEST_HIDE_TOOLCHAINS: "python-frameworks", ...env },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  it("prints each problem on a line of its own and exits 1; 0 when clean; under REQUIRE_TOOLCHAINS=1 unrun python fails", async () => {
    const [bad, clean, required] = await Promise.all([
      cli([badFile]),
      cli([cleanFile]),
      cli([pythonFile], { REQUIRE_TOOLCHAINS: "1" }),
    ]);
    expect(bad.stdout.trimEnd().split("\n")).toEqual([
      `${badFile}:1: WEBHOOK_TIMEOUT_MS — not an environment variable of the service (ENV_VARS in src/config.ts) nor of the tests`,
      expect.stringMatching(
        new RegExp(`^${badFile}:7: \`\`\`yaml — a fenced block needs a checked language`),
      ),
    ]);
    expect(bad.stderr).toContain(
      "docs-check: 1 python block(s) not run: python-frameworks is not installed (apt-get install",
    );
    expect(bad.code).toBe(1);

    expect(clean).toEqual({ code: 0, stdout: "", stderr: "" });

    expect(required.stdout).toBe("");
    expect(required.stderr).toContain("REQUIRE_TOOLCHAINS=1 but python-frameworks is not installed");
    expect(required.code).toBe(1);
  }, 120_000);
});
