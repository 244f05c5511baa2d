/**
 * test/helpers/toolchains.ts decides, for every test that needs more than Node, whether it runs, is
 * skipped naming what to install, or fails under REQUIRE_TOOLCHAINS=1. It reads its environment
 * once, at import, so each case imports it afresh in a child process with the environment under
 * test. That child's PATH holds a stand-in `go` and nothing else, so "present" holds on a machine
 * without Go and "absent" holds for Ruby on a machine that has it. The helper is transpiled once, so
 * each child is plain Node: tsx in every child costs seconds on a loaded machine.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HELPER = join(ROOT, "test/helpers/toolchains.ts");

const scratch = mkdtempSync(join(tmpdir(), "cw-toolchains-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const bin = join(scratch, "bin");
mkdirSync(bin);
writeFileSync(join(bin, "go"), "#!/bin/sh\nexit 0\n");
chmodSync(join(bin, "go"), 0o755);
const helperJs = join(scratch, "toolchains.mjs");
writeFileSync(
  helperJs,
  ts.transpileModule(readFileSync(HELPER, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText,
);

type Outcome = { value: unknown } | { error: string } | { skipped: string };
interface Verdict {
  has: Outcome;
  missing: Outcome;
  need: Outcome;
}

/**
 * What the helper says about each of `names`, imported in a child whose environment is PATH=bin
 * plus `env` alone (so this file's own REQUIRE_TOOLCHAINS or TEST_HIDE_TOOLCHAINS cannot leak in).
 */
function inChild(
  env: Record<string, string>,
  names: string[],
): { verdicts: Record<string, Verdict>; all: string[]; stderr: string } {
  const code = `
    const t = await import(${JSON.stringify(pathToFileURL(helperJs).href)});
    const outcome = (fn) => {
      try { return { value: fn() ?? null }; } catch (e) { return { error: e.message }; }
    };
    const need = (name) => {
      let note = null;
      // Like vitest's, this skip() ends the test by throwing.
      const ctx = { skip(n) { note = n; throw new Error("skip() was called"); } };
      const result = outcome(() => t.needToolchain(ctx, name));
      return note === null ? result : { skipped: note };
    };
    const verdicts = {};
    for (const name of ${JSON.stringify(names)}) {
      verdicts[name] = {
        has: outcome(() => t.hasToolchain(name)),
        missing: outcome(() => t.toolchainMissing(name)),
        need: need(name),
      };
    }
    console.log(JSON.stringify({ verdicts, all: t.TOOLCHAIN_NAMES }));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    cwd: ROOT,
    env: { PATH: bin, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return { ...JSON.parse(r.stdout.trim().split("\n").at(-1)!), stderr: r.stderr };
}

// Child processes: slow when the machine is busy, whatever the code does.
describe("toolchain registry", { timeout: 120_000 }, () => {
  it("finds a toolchain that is there: the test runs", () => {
    const { verdicts } = inChild({}, ["go"]);
    expect(verdicts.go).toEqual({ has: { value: true }, missing: { value: null }, need: { value: null } });
  });

  it("skips a test whose toolchain is absent, naming the install command, even under REQUIRE_SERVICES=1", () => {
    const { verdicts, stderr } = inChild({ REQUIRE_SERVICES: "1" }, ["ruby"]);
    const reason = "ruby is not installed (apt-get install ruby)";
    expect(verdicts.ruby).toEqual({
      has: { value: false },
      missing: { value: reason },
      need: { skipped: reason },
    });
    // Also on the console, where a skip note may not be shown by every reporter.
    expect(stderr).toContain(`skipped: ${reason}`);
  });

  it("under REQUIRE_TOOLCHAINS=1 throws for an absent toolchain instead of skipping", () => {
    const { verdicts } = inChild({ REQUIRE_TOOLCHAINS: "1" }, ["go", "ruby"]);
    expect(verdicts.go).toEqual({ has: { value: true }, missing: { value: null }, need: { value: null } });
    const error = "REQUIRE_TOOLCHAINS=1 but ruby is not installed (apt-get install ruby)";
    expect(verdicts.ruby).toEqual({ has: { value: false }, missing: { error }, need: { error } });
  });

  it("REQUIRE_TOOLCHAINS means 1 only", () => {
    const { verdicts } = inChild({ REQUIRE_TOOLCHAINS: "0" }, ["ruby"]);
    expect(verdicts.ruby?.need).toEqual({ skipped: "ruby is not installed (apt-get install ruby)" });
  });

  it("TEST_HIDE_TOOLCHAINS hides the toolchains it names", () => {
    const one = inChild({ TEST_HIDE_TOOLCHAINS: "go" }, ["go"]).verdicts.go;
    expect(one?.need).toEqual({ skipped: "go is not installed (apt-get install golang-go)" });
    const list = inChild({ TEST_HIDE_TOOLCHAINS: "ruby, go" }, ["go"]).verdicts.go;
    expect(list?.has).toEqual({ value: false });
    const other = inChild({ TEST_HIDE_TOOLCHAINS: "promtool" }, ["go"]).verdicts.go;
    expect(other?.has).toEqual({ value: true });
  });

  it("TEST_HIDE_TOOLCHAINS=all hides every toolchain, each naming an install command", () => {
    const probe = inChild({}, []);
    expect(probe.all).toEqual(
      expect.arrayContaining(["python", "python-frameworks", "go", "ruby", "promtool", "systemd-analyze"]),
    );
    const { verdicts } = inChild({ TEST_HIDE_TOOLCHAINS: "all" }, probe.all);
    const reasons = new Map<string, string>();
    for (const name of probe.all) {
      const reason = (verdicts[name]!.missing as { value: string }).value;
      expect(reason, name).toMatch(
        new RegExp(`^${name} is not installed \\(apt-get install [a-z0-9-]+.*\\)$`),
      );
      expect(verdicts[name]!.need, name).toEqual({ skipped: reason });
      reasons.set(name, reason);
    }
    const required = inChild({ TEST_HIDE_TOOLCHAINS: "all", REQUIRE_TOOLCHAINS: "1" }, probe.all).verdicts;
    for (const name of probe.all) {
      expect(required[name]!.need, name).toEqual({ error: `REQUIRE_TOOLCHAINS=1 but ${reasons.get(name)}` });
    }
  });
});

describe("in a real vitest run", { timeout: 120_000 }, () => {
  const dir = join(scratch, "suite");
  mkdirSync(dir);
  writeFileSync(join(dir, "vitest.config.mjs"), "export default {};\n");
  writeFileSync(
    join(dir, "needs-ruby.test.ts"),
    `import { expect, it } from "vitest";
import { needToolchain } from ${JSON.stringify(pathToFileURL(HELPER).href)};
it("needs ruby", (ctx) => {
  needToolchain(ctx, "ruby");
  expect(true).toBe(true);
});
`,
  );
  const vitest = (env: Record<string, string>) => {
    const r = spawnSync(
      process.execPath,
      [join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--root", dir, "--reporter=verbose"],
      {
        cwd: ROOT,
        env: { PATH: `${bin}:${process.env.PATH}`, NO_COLOR: "1", TEST_HIDE_TOOLCHAINS: "ruby", ...env },
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    return { code: r.status, output: `${r.stdout}${r.stderr}` };
  };

  it("a missing toolchain is a skipped test whose note names the install command", () => {
    const r = vitest({});
    expect(r.output).toMatch(
      /↓ needs-ruby\.test\.ts > needs ruby .*\[ruby is not installed \(apt-get install ruby\)\]/,
    );
    expect(r.output).toMatch(/Tests\s+1 skipped \(1\)/);
    expect(r.code, r.output).toBe(0);
  });

  it("under REQUIRE_TOOLCHAINS=1 it is a failed test", () => {
    const r = vitest({ REQUIRE_TOOLCHAINS: "1" });
    expect(r.output).toContain("REQUIRE_TOOLCHAINS=1 but ruby is not installed (apt-get install ruby)");
    expect(r.output).toMatch(/Tests\s+1 failed \(1\)/);
    expect(r.code).toBe(1);
  });
});
