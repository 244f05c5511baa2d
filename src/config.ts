/**
 * Environment + flags → one frozen, validated Config. Every variable of CONTRACT §1 is read here and
 * nowhere else. A bad value throws ConfigError naming where it came from (the flag when one set it,
 * otherwise the variable) and the accepted form; the CLI prints that one line and exits 2.
 */
import { parseDuration } from "./duration.js";
import { parseCidrs } from "./validator.js";

export type Environment = "development" | "production";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface Config {
  databaseUrl: string | undefined;
  sqlitePath: string;
  redisUrl: string | undefined;
  workers: number;
  timeoutMs: number;
  maxRetries: number;
  environment: Environment;
  port: number;
  host: string;
  logLevel: LogLevel;
  allowTargets: readonly string[];
  /** Delay before retry n+1, in ms; its length is the number of retries (WEBHOOK_MAX_RETRIES). */
  retrySchedule: readonly number[];
  breakerThreshold: number;
  breakerCooldownMs: number;
  endpointConcurrency: number;
  retentionDays: number;
  drainTimeoutMs: number;
  /** `worker`: the port of its own /health and /metrics. */
  metricsPort: number;
  /**
   * Fraction (0..1) by which each retry delay is spread, at random, either way: 0.2 turns a 30 s
   * delay into 24–36 s. 0 (the default) keeps the schedule exact.
   */
  retryJitter: number;
}

export const ENV_VARS = [
  "DATABASE_URL",
  "SQLITE_PATH",
  "REDIS_URL",
  "WEBHOOK_WORKERS",
  "WEBHOOK_TIMEOUT",
  "WEBHOOK_MAX_RETRIES",
  "ENVIRONMENT",
  "PORT",
  "HOST",
  "LOG_LEVEL",
  "WEBHOOK_ALLOW_TARGETS",
  "WEBHOOK_RETRY_SCHEDULE",
  "WEBHOOK_BREAKER_THRESHOLD",
  "WEBHOOK_BREAKER_COOLDOWN",
  "WEBHOOK_ENDPOINT_CONCURRENCY",
  "WEBHOOK_RETENTION_DAYS",
  "WEBHOOK_DRAIN_TIMEOUT",
  "METRICS_PORT",
  "WEBHOOK_RETRY_JITTER",
] as const;

export type EnvVar = (typeof ENV_VARS)[number];
export type ConfigInput = Partial<Record<EnvVar, string | undefined>>;

export const DEFAULT_RETRY_SCHEDULE = "1s,5s,30s,5m,30m";

export class ConfigError extends Error {
  override name = "ConfigError";
  /** What the message names: the flag that set the value (`--workers`), or else the variable. */
  readonly source: string;
  constructor(
    readonly variable: EnvVar,
    message: string,
    source: string = variable,
  ) {
    super(`${source}: ${message}`);
    this.source = source;
  }
}

export interface LoadConfigOptions {
  /** The flag that set each variable given in `flags` (`WEBHOOK_WORKERS` → `--workers`), for messages. */
  flagNames?: Partial<Record<EnvVar, string>>;
  /**
   * The caller opens its store from this config (the CLI does; a library caller handing
   * createEngine a store of its own does not). Then REDIS_URL without DATABASE_URL can only be
   * a mistake: the Redis queue needs PostgreSQL, and the store would be a local SQLite file.
   */
  opensStore?: boolean;
}

const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * `flags` override `env`, variable by variable. Empty strings count as unset, so
 * `REDIS_URL= continuum-webhooks serve` behaves like no REDIS_URL at all.
 */
export function loadConfig(
  env: ConfigInput = process.env,
  flags: ConfigInput = {},
  options: LoadConfigOptions = {},
): Readonly<Config> {
  const read = (name: EnvVar): string | undefined => {
    const v = flags[name] ?? env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  /** The name the user typed the value under. */
  const source = (name: EnvVar): string =>
    flags[name] !== undefined ? (options.flagNames?.[name] ?? name) : name;
  // A declaration, not an arrow: only then does TypeScript narrow after a call that never returns.
  function fail(name: EnvVar, message: string): never {
    throw new ConfigError(name, message, source(name));
  }

  const int = (name: EnvVar, dflt: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      fail(name, `expected a whole number from ${min} to ${max}, got "${raw}"`);
    }
    return Number(raw);
  };

  const duration = (name: EnvVar, dflt: string, minMs: number, maxMs: number): number => {
    const raw = read(name) ?? dflt;
    const ms = parseDuration(raw);
    if (ms === null || ms < minMs || ms > maxMs) {
      fail(
        name,
        `expected a duration such as 500ms, 30s, 5m or 1h (between ${minMs}ms and ${maxMs / 1000}s), got "${raw}"`,
      );
    }
    return ms;
  };

  const fraction = (name: EnvVar, dflt: number): number => {
    const raw = read(name);
    if (raw === undefined) return dflt;
    if (!/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/.test(raw)) {
      fail(name, `expected a fraction from 0 to 1 such as 0.2 (0 turns it off), got "${raw}"`);
    }
    return Number(raw);
  };

  const databaseUrl = read("DATABASE_URL");
  if (databaseUrl !== undefined && !isUrlWithScheme(databaseUrl, ["postgres:", "postgresql:"])) {
    // The value may hold a password: name the variable, never echo it.
    fail("DATABASE_URL", "expected a postgres:// or postgresql:// URL");
  }
  const redisUrl = read("REDIS_URL");
  if (redisUrl !== undefined && !isUrlWithScheme(redisUrl, ["redis:", "rediss:"])) {
    fail("REDIS_URL", "expected a redis:// or rediss:// URL");
  }
  if (options.opensStore && redisUrl !== undefined && databaseUrl === undefined) {
    const sqliteFlag = flags.SQLITE_PATH !== undefined ? options.flagNames?.SQLITE_PATH : undefined;
    const unset = source("REDIS_URL") === "REDIS_URL" ? "unset REDIS_URL" : `drop ${source("REDIS_URL")}`;
    fail(
      "REDIS_URL",
      sqliteFlag !== undefined
        ? `the Redis queue needs PostgreSQL, but ${sqliteFlag} names a SQLite file: give ${sqliteFlag} a postgres:// URL, or ${unset} to run embedded on SQLite`
        : `the Redis queue needs PostgreSQL, and DATABASE_URL is not set: set DATABASE_URL (or --db) to a postgres:// URL, or ${unset} to run embedded on SQLite`,
    );
  }

  const environment = read("ENVIRONMENT") ?? "development";
  if (environment !== "development" && environment !== "production") {
    fail("ENVIRONMENT", `expected "development" or "production", got "${environment}"`);
  }

  const logLevel = (read("LOG_LEVEL") ?? "info").toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    fail("LOG_LEVEL", `expected one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }

  const allowTargets = (read("WEBHOOK_ALLOW_TARGETS") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const cidr of allowTargets) {
    try {
      parseCidrs([cidr]);
    } catch {
      fail(
        "WEBHOOK_ALLOW_TARGETS",
        `expected comma-separated CIDRs such as 127.0.0.1/32,::1/128, got "${cidr}"`,
      );
    }
  }

  const maxRetries = int("WEBHOOK_MAX_RETRIES", 5, 0, 50);
  const scheduleText = read("WEBHOOK_RETRY_SCHEDULE") ?? DEFAULT_RETRY_SCHEDULE;
  const schedule = parseSchedule(scheduleText);
  if (schedule === null) {
    fail(
      "WEBHOOK_RETRY_SCHEDULE",
      `expected comma-separated durations such as 1s,5s,30s,5m,30m (each up to 24h), got "${scheduleText}"`,
    );
  }

  const host = read("HOST") ?? "127.0.0.1";
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) {
    fail("HOST", `expected a host name or IP address to listen on, got "${host}"`);
  }

  const config: Config = {
    databaseUrl,
    sqlitePath: read("SQLITE_PATH") ?? "./data/continuum-webhooks.db",
    redisUrl,
    workers: int("WEBHOOK_WORKERS", 10, 1, 1000),
    timeoutMs: duration("WEBHOOK_TIMEOUT", "30s", 100, 300_000),
    maxRetries,
    environment,
    port: int("PORT", 8080, 0, 65535),
    host,
    logLevel: logLevel as LogLevel,
    allowTargets: Object.freeze(allowTargets),
    retrySchedule: Object.freeze(fitSchedule(schedule, maxRetries)),
    breakerThreshold: int("WEBHOOK_BREAKER_THRESHOLD", 5, 1, 1000),
    breakerCooldownMs: duration("WEBHOOK_BREAKER_COOLDOWN", "5m", 100, 86_400_000),
    endpointConcurrency: int("WEBHOOK_ENDPOINT_CONCURRENCY", 10, 1, 1000),
    retentionDays: int("WEBHOOK_RETENTION_DAYS", 30, 1, 3650),
    drainTimeoutMs: duration("WEBHOOK_DRAIN_TIMEOUT", "30s", 0, 600_000),
    metricsPort: int("METRICS_PORT", 9090, 0, 65535),
    retryJitter: fraction("WEBHOOK_RETRY_JITTER", 0),
  };
  return Object.freeze(config);
}

/** Comma-separated durations, each at most 24 h; null when any part is not one. */
export function parseSchedule(text: string): number[] | null {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.length > 50) return null;
  const out: number[] = [];
  for (const p of parts) {
    const ms = parseDuration(p);
    if (ms === null || ms > 86_400_000) return null;
    out.push(ms);
  }
  return out;
}

/**
 * The schedule has exactly `retries` entries: cut when longer, and when shorter the last delay
 * repeats (so WEBHOOK_MAX_RETRIES=8 with the default schedule retries every 30 min at the end).
 */
export function fitSchedule(schedule: readonly number[], retries: number): number[] {
  const out = schedule.slice(0, retries);
  const last = schedule[schedule.length - 1] ?? 1000;
  while (out.length < retries) out.push(last);
  return out;
}

function isUrlWithScheme(value: string, schemes: string[]): boolean {
  try {
    return schemes.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
