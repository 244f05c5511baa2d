/**
 * Toolchains some tests need beyond Node: Python with its web frameworks, Go, Ruby, promtool,
 * systemd-analyze, Chromium. `npm test` must pass on a machine with Node alone, so a missing one
 * skips the test that needs it, naming what to install; with REQUIRE_TOOLCHAINS=1 (set by
 * .ci/run, which installs them all) a missing one fails the test instead, so CI can never pass by
 * skipping.
 *
 * TEST_HIDE_TOOLCHAINS=all (or a comma-separated list of names) makes them look absent, to try
 * the Node-only path on a machine that has them.
 */
import { spawnSync } from "node:child_process";

/** Debian's interpreter: the web frameworks come from Debian packages, not from a pyenv build. */
export const PYTHON = "/usr/bin/python3";

interface Toolchain {
  probe: () => boolean;
  install: string;
}

function runs(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore", timeout: 15_000 }).status === 0;
}

const TOOLCHAINS = {
  python: { probe: () => runs(PYTHON, ["-c", "import json"]), install: "apt-get install python3" },
  "python-frameworks": {
    probe: () => runs(PYTHON, ["-c", "import flask, fastapi, django, httpx, uvicorn"]),
    install:
      "apt-get install python3 python3-flask python3-fastapi python3-django python3-httpx python3-uvicorn",
  },
  go: { probe: () => runs("go", ["version"]), install: "apt-get install golang-go" },
  ruby: {
    probe: () => runs("ruby", ["-e", 'require "minitest"; require "openssl"; require "json"']),
    install: "apt-get install ruby",
  },
  promtool: { probe: () => runs("promtool", ["--version"]), install: "apt-get install prometheus" },
  "systemd-analyze": {
    probe: () => runs("systemd-analyze", ["--version"]),
    install: "apt-get install systemd",
  },
  chromium: { probe: () => runs("/usr/bin/chromium", ["--version"]), install: "apt-get install chromium" },
} satisfies Record<string, Toolchain>;

export type ToolchainName = keyof typeof TOOLCHAINS;

/** Every name the registry knows, for whoever must go through them all (its own test, for one). */
export const TOOLCHAIN_NAMES = Object.keys(TOOLCHAINS) as ToolchainName[];

export const REQUIRE_TOOLCHAINS = process.env.REQUIRE_TOOLCHAINS === "1";

const hidden = new Set((process.env.TEST_HIDE_TOOLCHAINS ?? "").split(",").map((s) => s.trim()));
const found = new Map<ToolchainName, boolean>();

/** Whether the toolchain is here (probed once per test file). */
export function hasToolchain(name: ToolchainName): boolean {
  if (hidden.has("all") || hidden.has(name)) return false;
  let ok = found.get(name);
  if (ok === undefined) {
    ok = TOOLCHAINS[name].probe();
    found.set(name, ok);
  }
  return ok;
}

/** Why the toolchain is missing, with the command that installs it; null when it is here. */
export function toolchainMissing(name: ToolchainName): string | null {
  if (hasToolchain(name)) return null;
  const message = `${name} is not installed (${TOOLCHAINS[name].install})`;
  if (REQUIRE_TOOLCHAINS) throw new Error(`REQUIRE_TOOLCHAINS=1 but ${message}`);
  return message;
}

/**
 * Inside a test: returns when the toolchain is here; otherwise skips the test, naming what to
 * install (or fails it under REQUIRE_TOOLCHAINS=1).
 */
export function needToolchain(ctx: { skip(note?: string): void }, name: ToolchainName): void {
  const missing = toolchainMissing(name);
  if (missing === null) return;
  console.warn(`skipped: ${missing}`);
  ctx.skip(missing);
}
