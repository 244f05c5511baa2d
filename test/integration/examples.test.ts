/**
 * The receiver examples in examples/ (§8): each language's own suite runs as a child process and
 * must verify every vector of docs/test-vectors.json; the count each suite prints is compared with
 * the file, so a suite that silently checked nothing fails here. Then the complete FastAPI and
 * Express receivers run as real servers on loopback and receive deliveries signed by our signer.
 *
 * A missing toolchain skips its test with the package to install; under REQUIRE_TOOLCHAINS=1 (CI)
 * it fails instead (test/helpers/toolchains.ts).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TEST_VECTORS_PATH, type TestVectors } from "../../scripts/gen-test-vectors.js";
import { generateSecret, signWebhook } from "../../src/signer.js";
import { needToolchain, PYTHON } from "../helpers/toolchains.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLES = join(ROOT, "examples");
const vectors = JSON.parse(readFileSync(TEST_VECTORS_PATH, "utf8")) as TestVectors;
const POSITIVE = vectors.positive.length;
const NEGATIVE = vectors.negative.length;

interface RunResult {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<RunResult>((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...options.env },
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

/** The counts a suite printed for one verifier: `continuum test vectors [label]: N positive accepted, M negative rejected`. */
function countsFor(output: string, label: string): { positive: number; negative: number } | undefined {
  const pattern = new RegExp(
    `continuum test vectors \\[${label}\\]: (\\d+) positive accepted, (\\d+) negative rejected`,
  );
  const m = pattern.exec(output);
  return m ? { positive: Number(m[1]), negative: Number(m[2]) } : undefined;
}

function expectAllVectors(result: RunResult, labels: string[]): void {
  expect(result.code, result.output).toBe(0);
  for (const label of labels) {
    expect(countsFor(result.output, label), `${label} in:\n${result.output}`).toEqual({
      positive: POSITIVE,
      negative: NEGATIVE,
    });
  }
}

describe("receiver examples verify every test vector", () => {
  it("has vectors to check", () => {
    expect(POSITIVE).toBeGreaterThanOrEqual(20);
    expect(NEGATIVE).toBeGreaterThanOrEqual(10);
  });

  it("Python: verify_webhook.py, its Flask, FastAPI and Django adapters, and fastapi_receiver/main.py", async (ctx) => {
    needToolchain(ctx, "python-frameworks");
    const result = await run(PYTHON, ["-m", "unittest", "-v", "examples/test_verify_webhook.py"]);
    expectAllVectors(result, ["python", "flask", "fastapi", "django", "fastapi_receiver"]);
    expect(result.output).not.toMatch(/skipped/); // every adapter really ran
  });

  it("JavaScript: verify_webhook.js, its Express middleware, Next.js handler and queue hand-off", async () => {
    const result = await run(process.execPath, ["--test", "examples/verify_webhook.test.js"]);
    expectAllVectors(result, ["javascript"]);
    expect(result.output).toMatch(/^# fail 0$/m);
    expect(result.output).toMatch(/^# skipped 0$/m);
  });

  it("Go: verify_webhook.go and its net/http handler", async (ctx) => {
    needToolchain(ctx, "go");
    const scratch = join(tmpdir(), "continuum-webhooks-examples-go");
    mkdirSync(scratch, { recursive: true });
    const result = await run("go", ["test", "-count=1", "-v", "./..."], {
      cwd: EXAMPLES,
      env: {
        // Standard library only: never reach for the network or a toolchain download.
        GOPROXY: "off",
        GOSUMDB: "off",
        GOFLAGS: "-mod=mod",
        GOTOOLCHAIN: "local",
        GOTELEMETRY: "off",
        GOWORK: "off",
        GOPATH: join(scratch, "path"),
        GOCACHE: join(scratch, "cache"),
      },
    });
    expectAllVectors(result, ["go"]);
    expect(result.output).toMatch(/^ok\s+example\.com\/continuumwebhooks\b/m);
  });

  it("Ruby: verify_webhook.rb and its Rack handler", async (ctx) => {
    needToolchain(ctx, "ruby");
    const result = await run("ruby", ["examples/test_verify_webhook.rb"]);
    expectAllVectors(result, ["ruby"]);
    expect(result.output).toMatch(/\b0 failures, 0 errors, 0 skips\b/);
  });
});

// ---------------------------------------------------------------------------------------------
// The complete receivers, as real servers

interface Server {
  child: ChildProcess;
  output: () => string;
  base: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probeServer = createServer();
    probeServer.once("error", reject);
    probeServer.listen(0, "127.0.0.1", () => {
      const address = probeServer.address();
      probeServer.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, server: Server) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (server.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${what} did not happen; output:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Omit<Server, "base"> {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PYTHONUNBUFFERED: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}

async function stop(server: Omit<Server, "base"> | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  if (server.child.exitCode === null) server.child.kill("SIGKILL");
}

let deliveries = 0;

/** One delivery as the service sends it, signed now (or `age` seconds ago). */
function delivery(secret: string, options: { age?: number; previous?: string; event?: string } = {}) {
  const deliveryId = `dlv_EXAMPLES${Date.now()}${deliveries++}`;
  const event = options.event ?? "memory.created";
  return signWebhook({
    secret,
    secrets: options.previous ? [options.previous] : [],
    deliveryId,
    event,
    timestamp: Math.floor(Date.now() / 1000) - (options.age ?? 0),
    payload: {
      id: `evt_EXAMPLES${deliveries}`,
      event,
      created_at: new Date().toISOString(),
      user_id: "user_42",
      data: { memory_id: "mem_1", content_preview: "Grüße 🌍", concepts: ["examples"], importance: 0.5 },
    },
  });
}

async function post(server: Server, signed: { body: string; headers: Record<string, string> }) {
  const response = await fetch(`${server.base}/webhooks/continuum`, {
    method: "POST",
    headers: signed.headers,
    body: signed.body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

async function exerciseReceiver(server: Server, secret: string): Promise<void> {
  // Both header families, as sent.
  const ok = delivery(secret);
  const id = ok.headers["X-Continuum-Delivery"];
  expect(await post(server, ok)).toEqual({ status: 200, body: { status: "ok", delivery_id: id } });
  // The handler for the type ran (after the response).
  await waitFor(
    "dispatch",
    () => (server.output().includes(`processed memory.created ${id}`) ? true : undefined),
    server,
  );

  // A retry of the same delivery: acknowledged, not processed again.
  const retry = await post(server, ok);
  expect(retry).toEqual({ status: 200, body: { status: "duplicate", delivery_id: id } });

  // Only the X-Continuum-* family, as the original CONTINUUM examples verify it.
  const legacy = delivery(secret, { event: "sync.failed" });
  const {
    "webhook-signature": _s,
    "webhook-id": _i,
    "webhook-timestamp": _t,
    ...continuumOnly
  } = legacy.headers;
  expect((await post(server, { body: legacy.body, headers: continuumOnly })).status).toBe(200);

  // The sender rotating to a new secret: its header carries both signatures, one still matches.
  expect((await post(server, delivery(generateSecret(), { previous: secret }))).status).toBe(200);

  // Refused, with the reason.
  const tampered = delivery(secret);
  expect(await post(server, { ...tampered, body: tampered.body.replace("mem_1", "mem_2") })).toMatchObject({
    status: 400,
    body: { reason: "bad_signature" },
  });
  expect(await post(server, delivery(generateSecret()))).toMatchObject({
    status: 400,
    body: { reason: "bad_signature" },
  });
  expect(await post(server, delivery(secret, { age: 301 }))).toMatchObject({
    status: 400,
    body: { reason: "expired" },
  });
  const { "webhook-signature": _a, "X-Continuum-Signature": _b, ...unsigned } = ok.headers;
  expect(await post(server, { body: ok.body, headers: unsigned })).toMatchObject({
    status: 400,
    body: { reason: "missing_header" },
  });
}

describe("complete receivers, running", () => {
  it("fastapi_receiver/main.py under uvicorn accepts signed deliveries and refuses bad ones", async (ctx) => {
    needToolchain(ctx, "python-frameworks");
    const secret = generateSecret();
    const port = await freePort();
    const started = start(
      PYTHON,
      ["-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", String(port)],
      join(EXAMPLES, "fastapi_receiver"),
      { CONTINUUM_WEBHOOK_SECRET: secret },
    );
    const server = { ...started, base: `http://127.0.0.1:${port}` };
    try {
      await waitFor(
        "uvicorn start",
        async () => {
          try {
            return (await fetch(`${server.base}/health`)).ok || undefined;
          } catch {
            return undefined;
          }
        },
        server,
      );
      await exerciseReceiver(server, secret);
    } finally {
      await stop(server);
    }
  });

  it("express_receiver/server.js accepts signed deliveries and refuses bad ones", async () => {
    const secret = generateSecret();
    const started = start(process.execPath, ["examples/express_receiver/server.js"], ROOT, {
      CONTINUUM_WEBHOOK_SECRET: secret,
      PORT: "0",
      HOST: "127.0.0.1",
    });
    try {
      const port = await waitFor(
        "express start",
        () => /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(started.output())?.[1],
        { ...started, base: "" },
      );
      await exerciseReceiver({ ...started, base: `http://127.0.0.1:${port}` }, secret);
    } finally {
      await stop(started);
    }
  });
});
