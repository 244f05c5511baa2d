import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
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

  it("gives each command only the flags it uses", async () => {
    const worker = await runCli(["worker", "--help"]);
    expect(worker.code).toBe(0);
    expect(worker.stdout).toContain("--metrics-port <n>");
    expect(worker.stdout).not.toMatch(/--port\b/);
    const serve = await runCli(["serve", "--help"]);
    expect(serve.stdout).toContain("--port <n>");
    expect(serve.stdout).not.toContain("--metrics-port");
    expect(serve.stdout).toContain("--retry-jitter <fraction>");
    expect((await runCli(["worker", "--port", "8081"])).stderr).toContain("unknown option '--port'");
  });

  it("stops on a bad configuration value with one line naming what was typed and exit 2", async () => {
    const r = await runCli(["serve"], { env: { WEBHOOK_WORKERS: "abc" }, cwd: dir });
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('WEBHOOK_WORKERS: expected a whole number from 1 to 1000, got "abc"');
    // A flag's bad value is reported under the flag, not the variable it overrides.
    const flag = await runCli(["worker", "--workers", "abc"], { env: { WEBHOOK_WORKERS: "4" }, cwd: dir });
    expect(flag.code).toBe(2);
    oneLine(flag.stderr);
    expect(flag.stderr).toBe(
      'continuum-webhooks: --workers: expected a whole number from 1 to 1000, got "abc"\n',
    );
    const cooldown = await runCli(["serve", "--breaker-cooldown", "forever"], { cwd: dir });
    expect(cooldown.code).toBe(2);
    expect(cooldown.stderr).toMatch(/^continuum-webhooks: --breaker-cooldown: expected a duration/);
    const jitter = await runCli(["serve", "--retry-jitter", "2"], { cwd: dir });
    expect(jitter.code).toBe(2);
    oneLine(jitter.stderr);
    expect(jitter.stderr).toContain(
      '--retry-jitter: expected a fraction from 0 to 1 such as 0.2 (0 turns it off), got "2"',
    );
  });

  it("refuses REDIS_URL without DATABASE_URL before creating a database or a key", async () => {
    const cwd = mkdtempSync(join(dir, "redis-only-"));
    const r = await runCli(["serve"], {
      env: { REDIS_URL: "redis://127.0.0.1:6379", SQLITE_PATH: join(cwd, "data", "hooks.db") },
      cwd,
    });
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(
      /^continuum-webhooks: REDIS_URL: the Redis queue needs PostgreSQL, .*set DATABASE_URL .*or unset REDIS_URL/,
    );
    expect(r.stderr).not.toContain("cwk_");
    expect(r.stdout).toBe("");
    expect(readdirSync(cwd)).toEqual([]);
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

  it("fails with one line naming the setting, where it pointed and what to do, when the database is unreachable", async () => {
    const deadPort = await freePort();
    const url = `postgres://nobody:hunter2@127.0.0.1:${deadPort}/none`;
    const byFlag = await runCli(["serve", "--db", url], { cwd: dir });
    expect(byFlag.code).toBe(1);
    oneLine(byFlag.stderr);
    expect(byFlag.stderr).toBe(
      `continuum-webhooks: cannot connect to PostgreSQL at 127.0.0.1:${deadPort} (--db): connection refused; ` +
        "start PostgreSQL there, or point --db at a server that is running\n",
    );
    const byEnv = await runCli(["migrate"], { env: { DATABASE_URL: url } });
    expect(byEnv.code).toBe(1);
    oneLine(byEnv.stderr);
    expect(byEnv.stderr).toContain(`PostgreSQL at 127.0.0.1:${deadPort} (DATABASE_URL): connection refused`);
    for (const r of [byFlag, byEnv]) expect(r.stderr + r.stdout).not.toContain("hunter2");
  });

  it("names SQLITE_PATH and the path when the SQLite file cannot be opened", async () => {
    const notAFile = mkdtempSync(join(dir, "a-directory-"));
    const r = await runCli(["api-key", "list"], { env: { SQLITE_PATH: notAFile } });
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain(`cannot open the SQLite database ${notAFile} (SQLITE_PATH): `);
    expect(r.stderr).toContain("or set SQLITE_PATH to another path");
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
    // snake_case, as everywhere in the HTTP API.
    expect(JSON.parse(list.stdout)).toEqual([
      {
        id,
        user_id: "alice",
        role: "admin",
        name: null,
        prefix: key.slice(0, 10),
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        last_used_at: null,
        revoked_at: null,
      },
    ]);

    expect((await runCli(["api-key", "revoke", id!, "--db", db])).code).toBe(0);
    const again = await runCli(["api-key", "revoke", id!, "--db", db]);
    expect(again.code).toBe(2);
    oneLine(again.stderr);
    const listed = JSON.parse((await runCli(["api-key", "list", "--json", "--db", db])).stdout);
    expect(listed[0].revoked_at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
  }, 120_000); // CLI processes one after another: each start takes seconds on a loaded machine

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
  it("names DATABASE_URL when the database or the user does not exist", async () => {
    const server = new URL(process.env.TEST_DATABASE_URL!);
    const noDb = new URL(server);
    noDb.pathname = "/cw_no_such_database";
    const r = await runCli(["migrate"], { env: { DATABASE_URL: noDb.toString() } });
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain(
      `(DATABASE_URL) has no database "cw_no_such_database": create it (CREATE DATABASE "cw_no_such_database") or name an existing one in DATABASE_URL`,
    );
    const noUser = new URL(server);
    noUser.username = "cw_no_such_role";
    noUser.password = "hunter2";
    const u = await runCli(["migrate", "--db", noUser.toString()]);
    expect(u.code).toBe(1);
    oneLine(u.stderr);
    // 28000 under trust authentication, 28P01 under password authentication.
    expect(u.stderr).toMatch(/\(--db\) refused the (connection|password) of user "cw_no_such_role"/);
    expect(u.stderr).not.toContain("hunter2");
  });

  it("succeeds twice in a row, and twice at the same time", async () => {
    const schema = await createPgSchema();
    try {
      const first = await runCli(["migrate", "--db", schema.url]);
      expect(first.code, first.stderr).toBe(0);
      // However many migrations there are by now, all of them the first time.
      expect(first.stdout).toMatch(/^applied [1-9]\d* migration\(s\): 001_initial/);
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
      expect(results.filter((r) => r.stdout.startsWith("applied "))).toHaveLength(1);
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
