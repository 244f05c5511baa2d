import type { Command } from "commander";
import { type Config, type ConfigInput, type EnvVar, loadConfig } from "../config.js";
import { isPostgresUrl } from "../store/index.js";

/** Each flag overrides the environment variable it names. */
const FLAGS: ReadonlyArray<readonly [flag: string, variable: EnvVar, help: string]> = [
  ["--redis <url>", "REDIS_URL", "Redis URL for the distributed queue (REDIS_URL)"],
  ["--workers <n>", "WEBHOOK_WORKERS", "concurrent deliveries (WEBHOOK_WORKERS, default 10)"],
  ["--timeout <duration>", "WEBHOOK_TIMEOUT", "whole-request timeout (WEBHOOK_TIMEOUT, default 30s)"],
  [
    "--max-retries <n>",
    "WEBHOOK_MAX_RETRIES",
    "retries after the first attempt (WEBHOOK_MAX_RETRIES, default 5)",
  ],
  ["--environment <env>", "ENVIRONMENT", "development | production (ENVIRONMENT)"],
  ["--port <n>", "PORT", "HTTP port (PORT, default 8080)"],
  ["--host <host>", "HOST", "address to listen on (HOST, default 127.0.0.1)"],
  ["--log-level <level>", "LOG_LEVEL", "fatal|error|warn|info|debug|trace|silent (LOG_LEVEL)"],
  ["--allow-targets <cidrs>", "WEBHOOK_ALLOW_TARGETS", "CIDRs exempt from SSRF rules, dev/test only"],
  ["--retry-schedule <durations>", "WEBHOOK_RETRY_SCHEDULE", "e.g. 1s,5s,30s,5m,30m"],
  [
    "--retry-jitter <fraction>",
    "WEBHOOK_RETRY_JITTER",
    "spread each retry delay by up to this fraction either way, 0..1 (default 0: exact)",
  ],
  ["--breaker-threshold <n>", "WEBHOOK_BREAKER_THRESHOLD", "consecutive failures that open the breaker"],
  ["--breaker-cooldown <duration>", "WEBHOOK_BREAKER_COOLDOWN", "how long the breaker stays open"],
  ["--endpoint-concurrency <n>", "WEBHOOK_ENDPOINT_CONCURRENCY", "max in-flight requests per webhook"],
  ["--retention-days <n>", "WEBHOOK_RETENTION_DAYS", "days of delivery history to keep (default 30)"],
  ["--drain-timeout <duration>", "WEBHOOK_DRAIN_TIMEOUT", "graceful shutdown budget (default 30s)"],
  ["--metrics-port <n>", "METRICS_PORT", "worker: port of its /health and /metrics (default 9090)"],
];

const DB_FLAG = [
  "--db <url-or-path>",
  "PostgreSQL URL (DATABASE_URL) or SQLite file path (SQLITE_PATH)",
] as const;

function camel(flag: string): string {
  const name = flag.split(" ")[0]!.replace(/^--/, "");
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Adds `--db` and, with `all`, every configuration flag. */
export function withConfigOptions(cmd: Command, all: boolean): Command {
  cmd.option(DB_FLAG[0], DB_FLAG[1]);
  if (all) for (const [flag, , help] of FLAGS) cmd.option(flag, help);
  else cmd.option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent (LOG_LEVEL)");
  return cmd;
}

export function configFromOptions(opts: Record<string, unknown>): Readonly<Config> {
  const flags: ConfigInput = {};
  for (const [flag, variable] of FLAGS) {
    const v = opts[camel(flag)];
    if (typeof v === "string") flags[variable] = v;
  }
  if (typeof opts.db === "string") {
    if (isPostgresUrl(opts.db)) flags.DATABASE_URL = opts.db;
    else {
      flags.SQLITE_PATH = opts.db;
      // An explicit SQLite path wins over a DATABASE_URL in the environment.
      return loadConfig({ ...process.env, DATABASE_URL: undefined }, flags);
    }
  }
  return loadConfig(process.env, flags);
}
