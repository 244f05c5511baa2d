import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { describeStartupError } from "../../src/commands/errors.js";
import { cliConfigFromOptions } from "../../src/commands/options.js";
import { ConfigError, type ConfigInput, fitSchedule, loadConfig } from "../../src/config.js";
import { formatDuration, parseDuration } from "../../src/duration.js";
import { buildProgram } from "../../src/program.js";

function caught(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("has the documented defaults with an empty environment", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      databaseUrl: undefined,
      sqlitePath: "./data/continuum-webhooks.db",
      redisUrl: undefined,
      workers: 10,
      timeoutMs: 30_000,
      maxRetries: 5,
      environment: "development",
      port: 8080,
      logLevel: "info",
      allowTargets: [],
      retrySchedule: [1000, 5000, 30_000, 300_000, 1_800_000],
      breakerThreshold: 5,
      breakerCooldownMs: 300_000,
      endpointConcurrency: 10,
      retentionDays: 30,
      retryJitter: 0,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.retrySchedule)).toBe(true);
  });

  it("reads every variable and lets flags override the environment", () => {
    const env: ConfigInput = {
      DATABASE_URL: "postgres://u:p@db:5432/hooks",
      REDIS_URL: "redis://cache:6379/0",
      WEBHOOK_WORKERS: "4",
      WEBHOOK_TIMEOUT: "500ms",
      WEBHOOK_MAX_RETRIES: "2",
      ENVIRONMENT: "production",
      PORT: "9000",
      HOST: "0.0.0.0",
      LOG_LEVEL: "DEBUG",
      WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32, ::1/128",
      WEBHOOK_RETRY_SCHEDULE: "2s,1m,1h",
      WEBHOOK_BREAKER_THRESHOLD: "3",
      WEBHOOK_BREAKER_COOLDOWN: "90s",
      WEBHOOK_ENDPOINT_CONCURRENCY: "2",
      WEBHOOK_RETENTION_DAYS: "7",
      WEBHOOK_RETRY_JITTER: "0.2",
    };
    const c = loadConfig(env, { WEBHOOK_WORKERS: "7", PORT: "9001" });
    expect(c).toMatchObject({
      databaseUrl: "postgres://u:p@db:5432/hooks",
      redisUrl: "redis://cache:6379/0",
      workers: 7,
      timeoutMs: 500,
      maxRetries: 2,
      environment: "production",
      port: 9001,
      host: "0.0.0.0",
      logLevel: "debug",
      allowTargets: ["127.0.0.1/32", "::1/128"],
      retrySchedule: [2000, 60_000],
      breakerThreshold: 3,
      breakerCooldownMs: 90_000,
      endpointConcurrency: 2,
      retentionDays: 7,
      retryJitter: 0.2,
    });
  });

  it.each([
    ["0", 0],
    ["1", 1],
    ["0.25", 0.25],
    [".5", 0.5],
    ["1.0", 1],
  ])("reads WEBHOOK_RETRY_JITTER=%s as %d", (raw, fraction) => {
    expect(loadConfig({ WEBHOOK_RETRY_JITTER: raw }).retryJitter).toBe(fraction);
  });

  it("treats empty values as unset", () => {
    expect(loadConfig({ REDIS_URL: "", WEBHOOK_WORKERS: " " })).toMatchObject({
      redisUrl: undefined,
      workers: 10,
    });
  });

  it("stretches a short schedule to the retry count by repeating its last delay", () => {
    expect(fitSchedule([1000, 5000], 4)).toEqual([1000, 5000, 5000, 5000]);
    expect(fitSchedule([1000, 5000, 9000], 1)).toEqual([1000]);
    expect(loadConfig({ WEBHOOK_MAX_RETRIES: "0" }).retrySchedule).toEqual([]);
  });

  const bad: Array<[ConfigInput, string, RegExp]> = [
    [{ WEBHOOK_WORKERS: "abc" }, "WEBHOOK_WORKERS", /whole number from 1 to 1000, got "abc"/],
    [{ WEBHOOK_WORKERS: "0" }, "WEBHOOK_WORKERS", /from 1 to 1000/],
    [{ WEBHOOK_WORKERS: "1.5" }, "WEBHOOK_WORKERS", /whole number/],
    [{ WEBHOOK_WORKERS: "-3" }, "WEBHOOK_WORKERS", /whole number/],
    [{ PORT: "70000" }, "PORT", /0 to 65535/],
    [{ WEBHOOK_TIMEOUT: "soon" }, "WEBHOOK_TIMEOUT", /duration such as 500ms, 30s, 5m or 1h/],
    [{ WEBHOOK_TIMEOUT: "10ms" }, "WEBHOOK_TIMEOUT", /between 100ms/],
    [{ WEBHOOK_TIMEOUT: "2h" }, "WEBHOOK_TIMEOUT", /duration/],
    [{ WEBHOOK_MAX_RETRIES: "x" }, "WEBHOOK_MAX_RETRIES", /whole number/],
    [{ ENVIRONMENT: "staging" }, "ENVIRONMENT", /"development" or "production"/],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL", /one of fatal, error/],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL", /postgres:\/\/ or postgresql:\/\/ URL/],
    [{ DATABASE_URL: "not a url" }, "DATABASE_URL", /postgres/],
    [{ REDIS_URL: "http://x" }, "REDIS_URL", /redis:\/\/ or rediss:\/\/ URL/],
    [{ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/33" }, "WEBHOOK_ALLOW_TARGETS", /CIDRs/],
    [{ WEBHOOK_ALLOW_TARGETS: "localhost" }, "WEBHOOK_ALLOW_TARGETS", /CIDRs/],
    [{ WEBHOOK_RETRY_SCHEDULE: "1s,,5s" }, "WEBHOOK_RETRY_SCHEDULE", /comma-separated durations/],
    [{ WEBHOOK_RETRY_SCHEDULE: "1s,2d" }, "WEBHOOK_RETRY_SCHEDULE", /up to 24h/],
    [{ WEBHOOK_BREAKER_THRESHOLD: "0" }, "WEBHOOK_BREAKER_THRESHOLD", /from 1/],
    [{ WEBHOOK_BREAKER_COOLDOWN: "5 minutes" }, "WEBHOOK_BREAKER_COOLDOWN", /duration/],
    [{ WEBHOOK_ENDPOINT_CONCURRENCY: "many" }, "WEBHOOK_ENDPOINT_CONCURRENCY", /whole number/],
    [{ WEBHOOK_RETENTION_DAYS: "0" }, "WEBHOOK_RETENTION_DAYS", /from 1 to 3650/],
    [{ HOST: "bad host!" }, "HOST", /host name or IP/],
    [{ WEBHOOK_RETRY_JITTER: "1.5" }, "WEBHOOK_RETRY_JITTER", /fraction from 0 to 1 .*got "1.5"/],
    [{ WEBHOOK_RETRY_JITTER: "-0.1" }, "WEBHOOK_RETRY_JITTER", /fraction from 0 to 1/],
    [{ WEBHOOK_RETRY_JITTER: "20%" }, "WEBHOOK_RETRY_JITTER", /such as 0.2/],
    [{ WEBHOOK_RETRY_JITTER: "off" }, "WEBHOOK_RETRY_JITTER", /0 turns it off/],
  ];
  it.each(bad)("refuses %j naming the variable", (env, variable, message) => {
    let caught: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.variable).toBe(variable);
    expect(e.message.startsWith(`${variable}: `)).toBe(true);
    expect(e.message).toMatch(message);
    expect(e.message).not.toContain("\n");
  });

  it("never echoes a database URL, which may carry a password", () => {
    expect(() => loadConfig({ DATABASE_URL: "mysql://user:hunter2@db/x" })).toThrow(/^(?!.*hunter2)/);
  });

  it("names the flag when a flag set the bad value, and the variable when the environment did", () => {
    const flagNames = { WEBHOOK_WORKERS: "--workers" };
    const fromFlag = caught(() => loadConfig({}, { WEBHOOK_WORKERS: "abc" }, { flagNames }));
    expect(fromFlag.message).toBe('--workers: expected a whole number from 1 to 1000, got "abc"');
    expect(fromFlag.variable).toBe("WEBHOOK_WORKERS");
    expect(fromFlag.source).toBe("--workers");
    // The flag is named only for the value it set: a bad variable next to it is still the variable.
    const fromEnv = caught(() => loadConfig({ PORT: "x" }, { WEBHOOK_WORKERS: "4" }, { flagNames }));
    expect(fromEnv.message).toMatch(/^PORT: /);
  });
});

describe("the CLI's configuration", () => {
  const commands = (program: Command): Command[] => [program, ...program.commands.flatMap(commands)];
  const configFlags = commands(buildProgram())
    .filter((c) => c.options.some((o) => o.long === "--db"))
    .flatMap((c) =>
      c.options
        .filter((o) => o.required && o.long !== "--db" && o.long !== "--user" && o.long !== "--name")
        .map((o) => [`${c.name()} ${o.long}`, o] as const),
    );

  it("covers every configuration flag of serve and worker", () => {
    const names = configFlags.map(([name]) => name);
    expect(names).toContain("serve --workers");
    expect(names).toContain("worker --metrics-port");
    expect(names).toContain("serve --retry-jitter");
    expect(names.length).toBeGreaterThan(30);
  });

  it.each(configFlags)("%s names the flag in its message", (_name, option) => {
    const bad = option.long === "--host" ? "bad host!" : "abc";
    const e = caught(() => cliConfigFromOptions({ [option.attributeName()]: bad }, {}));
    expect(e.message.startsWith(`${option.long}: `)).toBe(true);
    expect(e.message).not.toContain("\n");
  });

  it("refuses REDIS_URL without DATABASE_URL before anything opens a store", () => {
    const e = caught(() => cliConfigFromOptions({}, { REDIS_URL: "redis://127.0.0.1:6379" }));
    expect(e.variable).toBe("REDIS_URL");
    expect(e.message).toMatch(/^REDIS_URL: the Redis queue needs PostgreSQL/);
    expect(e.message).toContain("set DATABASE_URL");
    expect(e.message).toContain("or unset REDIS_URL");
    expect(e.message).not.toContain("\n");
    // Given by flag, the line names the flags.
    const flag = caught(() => cliConfigFromOptions({ redis: "redis://127.0.0.1:6379", db: "./x.db" }, {}));
    expect(flag.message).toMatch(/^--redis: .*--db names a SQLite file.*drop --redis/);
    // With PostgreSQL it is the distributed mode.
    expect(
      cliConfigFromOptions({ redis: "redis://cache:6379" }, { DATABASE_URL: "postgres://db/x" }).config,
    ).toMatchObject({ redisUrl: "redis://cache:6379", databaseUrl: "postgres://db/x" });
  });

  it("lets a library caller that opens its own store pass REDIS_URL alone", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379" }).redisUrl).toBe("redis://127.0.0.1:6379");
  });
});

describe("describeStartupError", () => {
  const pg = loadConfig({ DATABASE_URL: "postgres://hooks:hunter2@db.internal:6543/hooks" });
  const pgByFlag = { flagNames: { DATABASE_URL: "--db" } } as const;
  const sqlite = loadConfig({ SQLITE_PATH: "/srv/hooks/hooks.db" });
  const errno = (code: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`${code} something`), { code, ...extra });

  it.each<[string, unknown, RegExp]>([
    [
      "connection refused",
      errno("ECONNREFUSED", { syscall: "connect", address: "10.0.0.5", port: 6543 }),
      /^cannot connect to PostgreSQL at db\.internal:6543 \(DATABASE_URL\): connection refused; start PostgreSQL there, or point DATABASE_URL at a server that is running$/,
    ],
    [
      "the first of several addresses",
      new AggregateError([errno("ECONNREFUSED", { port: 6543 }), errno("ECONNREFUSED", { port: 6543 })]),
      /connection refused/,
    ],
    [
      "an unknown host",
      errno("ENOTFOUND"),
      /host "db\.internal" not found; check the host name in DATABASE_URL$/,
    ],
    ["a timeout", errno("ETIMEDOUT"), /no answer; check that the host is up and that port 6543 is open/],
    ["pg's own connect timeout", new Error("Connection terminated unexpectedly"), /no answer in time/],
    [
      "a wrong password",
      errno("28P01"),
      /refused the password of user "hooks": correct the user name or password in DATABASE_URL$/,
    ],
    [
      "an unknown role",
      errno("28000"),
      /refused the connection of user "hooks" .*check the user name in DATABASE_URL/,
    ],
    [
      "a missing database",
      Object.assign(new Error('database "hooks" does not exist'), { code: "3D000" }),
      /has no database "hooks": create it \(CREATE DATABASE "hooks"\) or name an existing one in DATABASE_URL$/,
    ],
  ])("PostgreSQL: %s", (_name, err, line) => {
    const described = describeStartupError(err, pg);
    expect(described).toMatch(line);
    expect(described).not.toContain("hunter2");
    expect(describeStartupError(err, pg, pgByFlag)).toContain("(--db)");
  });

  it("leaves alone what is not about the database", () => {
    expect(describeStartupError(new Error("boom"), pg)).toBeNull();
    // Some other port refusing (Redis, say) is not DATABASE_URL's fault.
    expect(describeStartupError(errno("ECONNREFUSED", { port: 6379 }), pg)).toBeNull();
    expect(describeStartupError(errno("ECONNREFUSED"), sqlite)).toBeNull();
  });

  it.each(["SQLITE_CANTOPEN", "EACCES", "EROFS"])("SQLite: %s names SQLITE_PATH and the path", (code) => {
    expect(describeStartupError(errno(code, { syscall: "mkdir" }), sqlite)).toMatch(
      /^cannot open the SQLite database \/srv\/hooks\/hooks\.db \(SQLITE_PATH\): .*; make it and its directory writable by this user, or set SQLITE_PATH to another path$/,
    );
    expect(describeStartupError(errno(code), sqlite, { flagNames: { SQLITE_PATH: "--db" } })).toContain(
      "(--db)",
    );
  });
});

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1.5s", 1500],
    ["30", 30_000],
    ["1d", 86_400_000],
  ])("parses %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(["", "s", "5 m", "-1s", "1w", "1e3s", "abc"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeNull();
  });
  it("formats back to the shortest exact form", () => {
    expect([1000, 300_000, 1500, 3_600_000].map(formatDuration)).toEqual(["1s", "5m", "1500ms", "1h"]);
  });
});
