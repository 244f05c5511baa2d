import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, runCli, startServe } from "../helpers/cli.js";
import { createPgSchema, serviceMissing } from "../helpers/services.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

const dir = mkdtempSync(join(tmpdir(), "cw-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oneLine(text: string): void {
  expect(text.trimEnd().split("\n")).toHaveLength(1);
  expect(text).not.toMatch(/\bat .+:\d+:\d+/); // no stack trace
}

describe("continuum-webhooks CLI", () => {
  it("refuses an unknown verb with one line and exit 2", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });

  it("refuses an unknown flag with one line and exit 2", async () => {
    const r = await runCli(["migrate", "--frob"]);
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain("unknown option '--frob'");
  });

  it.each(["serve", "migrate", "api-key", "api-key create", "api-key list", "api-key revoke"])(
    "prints help for %s",
    async (verb) => {
      const r = await runCli([...verb.split(" "), "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: continuum-webhooks ${verb}`);
    },
  );

  it("stops on a bad configuration value with one line naming the variable and exit 2", async () => {
    const r = await runCli(["serve"], { env: { WEBHOOK_WORKERS: "abc" }, cwd: dir });
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain("WEBHOOK_WORKERS");
    const flag = await runCli(["serve", "--breaker-cooldown", "forever"], { cwd: dir });
    expect(flag.code).toBe(2);
    oneLine(flag.stderr);
    expect(flag.stderr).toContain("WEBHOOK_BREAKER_COOLDOWN");
  });

  it("serves /health on the embedded default, creating its SQLite file, and stops on SIGTERM", async () => {
    const cwd = mkdtempSync(join(dir, "serve-"));
    const served = await startServe(["serve"], { cwd });
    try {
      const res = await fetch(`http://127.0.0.1:${served.port}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        status: "healthy",
        database: { ok: true, dialect: "sqlite" },
      });
      expect(existsSync(join(cwd, "data", "continuum-webhooks.db"))).toBe(true);
      // A fresh database gets one admin key, printed once.
      expect(served.stderr()).toMatch(/admin key was created[\s\S]*cwk_[A-Za-z0-9_-]{43}/);
    } finally {
      expect(await served.stop()).toBe(0);
    }
    const again = await startServe(["serve"], { cwd });
    await again.stop();
    expect(again.stderr()).not.toContain("cwk_");
  });

  it("fails with one line, not a stack trace, when the database cannot be reached at start", async () => {
    const deadPort = await freePort();
    const r = await runCli(["migrate", "--db", `postgres://nobody:pw@127.0.0.1:${deadPort}/none`]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).not.toContain("pw@");
  });

  it("creates, lists and revokes API keys, printing a key only once", async () => {
    const db = join(dir, "keys.db");
    const created = await runCli(["api-key", "create", "--user", "alice", "--admin", "--db", db]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^cwk_[A-Za-z0-9_-]{43}$/);
    const id = /(key_[0-9A-Z]{26})/.exec(created.stderr)?.[1];
    expect(id).toBeDefined();

    const list = await runCli(["api-key", "list", "--json", "--db", db]);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain(key);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ id, userId: "alice", role: "admin" }),
    ]);

    expect((await runCli(["api-key", "revoke", id!, "--db", db])).code).toBe(0);
    const again = await runCli(["api-key", "revoke", id!, "--db", db]);
    expect(again.code).toBe(2);
    oneLine(again.stderr);
    const listed = JSON.parse((await runCli(["api-key", "list", "--json", "--db", db])).stdout);
    expect(listed[0].revokedAt).not.toBeNull();
  });

  it("refuses a bad user id or key id without writing anything", async () => {
    const db = join(dir, "keys2.db");
    const r = await runCli(["api-key", "create", "--user", "has space", "--db", db]);
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect((await runCli(["api-key", "create", "--db", db])).code).toBe(2);
    expect((await runCli(["api-key", "revoke", "nope", "--db", db])).code).toBe(2);
    expect(JSON.parse((await runCli(["api-key", "list", "--json", "--db", db])).stdout)).toEqual([]);
  });
});

describe.skipIf(serviceMissing("TEST_DATABASE_URL"))("continuum-webhooks migrate on PostgreSQL", () => {
  it("succeeds twice in a row, and twice at the same time", async () => {
    const schema = await createPgSchema();
    try {
      const first = await runCli(["migrate", "--db", schema.url]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toContain("applied 1 migration(s)");
      const second = await runCli(["migrate", "--db", schema.url]);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toContain("up to date");
    } finally {
      await schema.drop();
    }
    const fresh = await createPgSchema();
    try {
      const results = await Promise.all(
        Array.from({ length: 3 }, () => runCli(["migrate"], { env: { DATABASE_URL: fresh.url } })),
      );
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      expect(results.filter((r) => r.stdout.includes("applied 1 migration(s)"))).toHaveLength(1);
    } finally {
      await fresh.drop();
    }
  });

  it("serves /health against PostgreSQL: 503 while the database is unreachable, 200 once it is back", async () => {
    const schema = await createPgSchema();
    const pgUrl = new URL(schema.url);
    const proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
    pgUrl.host = `127.0.0.1:${proxy.port}`;
    const served = await startServe(["serve"], { env: { DATABASE_URL: pgUrl.toString() } });
    const health = async () => {
      const res = await fetch(`http://127.0.0.1:${served.port}/health`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      expect(await health()).toMatchObject({
        status: 200,
        body: { database: { ok: true, dialect: "postgres" } },
      });
      await proxy.cut();
      expect(await health()).toMatchObject({
        status: 503,
        body: { status: "unhealthy", database: { ok: false } },
      });
      await proxy.restore();
      expect((await health()).status).toBe(200);
    } finally {
      await served.stop();
      await proxy.close();
      await schema.drop();
    }
  });
});

describe("continuum-webhooks worker", () => {
  it("runs workers on a SQLite file and serves /health and /metrics on --metrics-port", async () => {
    const metricsPort = await freePort();
    const served = await startServe(["worker", "--workers", "3", "--metrics-port", String(metricsPort)], {
      env: { SQLITE_PATH: join(dir, "worker.db") },
      healthPort: metricsPort,
    });
    try {
      const health = await fetch(`http://127.0.0.1:${metricsPort}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: "healthy", running: true, workers: 3 });
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toContain("# TYPE webhook_deliveries_total counter");
      expect(metrics).toMatch(/webhook_queue_depth\{priority="high"\} 0/);
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });
});
