import type { Command } from "commander";
import { type Config, type ConfigInput, type EnvVar, loadConfig } from "../config.js";
import { isPostgresUrl } from "../store/index.js";

/**
 * Which commands a flag belongs to: `serve` listens on --port, `worker` on --metrics-port; each
 * shows only what it uses, so `worker --help` offers nothing it would ignore.
 */
type Scope = "serve" | "worker" | "both";

/** Each flag overrides the environment variable it names. */
const FLAGS: ReadonlyArray<readonly [flag: string, variable: EnvVar, help: string, scope: Scope]> = [
  ["--redis <url>", "REDIS_URL", "Redis URL for the distributed queue (REDIS_URL)", "both"],
  ["--workers <n>", "WEBHOOK_WORKERS", "concurrent deliveries (WEBHOOK_WORKERS, default 10)", "both"],
  ["--timeout <duration>", "WEBHOOK_TIMEOUT", "whole-request timeout (WEBHOOK_TIMEOUT, default 30s)", "both"],
  [
    "--max-retries <n>",
    "WEBHOOK_MAX_RETRIES",
    "retries after the first attempt (WEBHOOK_MAX_RETRIES, default 5)",
    "both",
  ],
  ["--environment <env>", "ENVIRONMENT", "development | production (ENVIRONMENT)", "both"],
  ["--port <n>", "PORT", "HTTP port (PORT, default 8080)", "serve"],
  ["--host <host>", "HOST", "address to listen on (HOST, default 127.0.0.1)", "both"],
  ["--log-level <level>", "LOG_LEVEL", "fatal|error|warn|info|debug|trace|silent (LOG_LEVEL)", "both"],
  ["--allow-targets <cidrs>", "WEBHOOK_ALLOW_TARGETS", "CIDRs exempt from SSRF rules, dev/test only", "both"],
  ["--retry-schedule <durations>", "WEBHOOK_RETRY_SCHEDULE", "e.g. 1s,5s,30s,5m,30m", "both"],
  [
    "--retry-jitter <fraction>",
    "WEBHOOK_RETRY_JITTER",
    "spread each retry delay by up to this fraction either way, 0..1 (default 0: exact)",
    "both",
  ],
  [
    "--breaker-threshold <n>",
    "WEBHOOK_BREAKER_THRESHOLD",
    "consecutive failures that open the breaker",
    "both",
  ],
  ["--breaker-cooldown <duration>", "WEBHOOK_BREAKER_COOLDOWN", "how long the breaker stays open", "both"],
  [
    "--endpoint-concurrency <n>",
    "WEBHOOK_ENDPOINT_CONCURRENCY",
    "max in-flight requests per webhook",
    "both",
  ],
  ["--retention-days <n>", "WEBHOOK_RETENTION_DAYS", "days of delivery history to keep (default 30)", "both"],
  ["--drain-timeout <duration>", "WEBHOOK_DRAIN_TIMEOUT", "graceful shutdown budget (default 30s)", "both"],
  ["--metrics-port <n>", "METRICS_PORT", "port of /health and /metrics (default 9090)", "worker"],
];

const DB_FLAG = [
  "--db <url-or-path>",
  "PostgreSQL URL (DATABASE_URL) or SQLite file path (SQLITE_PATH)",
] as const;

function flagName(flag: string): string {
  return flag.split(" ")[0]!;
}

function camel(flag: string): string {
  return flagName(flag)
    .replace(/^--/, "")
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Adds `--db` and `--log-level`, and for `serve` or `worker` every configuration flag that
 * command uses.
 */
export function withConfigOptions(cmd: Command, command: "serve" | "worker" | "store-only"): Command {
  cmd.option(DB_FLAG[0], DB_FLAG[1]);
  for (const [flag, variable, help, scope] of FLAGS) {
    const wanted =
      command === "store-only" ? variable === "LOG_LEVEL" : scope === "both" || scope === command;
    if (wanted) cmd.option(flag, help);
  }
  return cmd;
}

/** A command's configuration, and the flag behind each variable a flag set (for messages). */
export interface CliConfig {
  config: Readonly<Config>;
  flagNames: Partial<Record<EnvVar, string>>;
}

export function cliConfigFromOptions(
  opts: Record<string, unknown>,
  environment: ConfigInput = process.env,
): CliConfig {
  const flags: ConfigInput = {};
  const flagNames: Partial<Record<EnvVar, string>> = {};
  for (const [flag, variable] of FLAGS) {
    const v = opts[camel(flag)];
    if (typeof v === "string") {
      flags[variable] = v;
      flagNames[variable] = flagName(flag);
    }
  }
  let env = environment;
  if (typeof opts.db === "string") {
    const variable = isPostgresUrl(opts.db) ? "DATABASE_URL" : "SQLITE_PATH";
    flags[variable] = opts.db;
    flagNames[variable] = "--db";
    // An explicit SQLite path wins over a DATABASE_URL in the environment.
    if (variable === "SQLITE_PATH") env = { ...environment, DATABASE_URL: undefined };
  }
  return { config: loadConfig(env, flags, { flagNames, opensStore: true }), flagNames };
}

export function configFromOptions(opts: Record<string, unknown>): Readonly<Config> {
  return cliConfigFromOptions(opts).config;
}
