/**
 * Why this exists: `npm run chaos -- …` options, parsed and checked in one place, and the exact
 * command that re-runs a campaign (only the options that differ from the defaults, plus the seed).
 */
import type { Mode } from "./history.js";
import { DEFAULT_BIN } from "./topology.js";

export interface CampaignOptions {
  mode: Mode;
  /** Seconds of faults (the heal and the drain come after). */
  seconds: number;
  seed: number;
  /** Events per second. */
  rate: number;
  /** Worker processes (postgres and redis modes). */
  workers: number;
  /** WEBHOOK_ENDPOINT_CONCURRENCY for every process. */
  limit: number;
  /** Bound on the drain after healing, in seconds. */
  drainSeconds: number;
  /** Fault kinds to leave out (the rest of the timeline is unchanged). */
  skip: string[];
  /** Mean gap between faults, ms. */
  gapMs: number;
  /** PostgreSQL server for the postgres and redis modes (a schema of its own is made per run). */
  databaseUrl: string;
  /** Build dist/ first (`npm run build`). */
  build: boolean;
  /** Keep the run directory (logs, SQLite file) and the PostgreSQL schema even on success. */
  keep: boolean;
  json: boolean;
  /** bin/continuum-webhooks.js of the build under test (default: this repository's). */
  bin: string;
}

export const DEFAULTS: Omit<CampaignOptions, "mode" | "seed"> = {
  seconds: 60,
  rate: 60,
  workers: 3,
  limit: 10,
  drainSeconds: 120,
  skip: [],
  gapMs: 2000,
  databaseUrl:
    process.env.CHAOS_DATABASE_URL ||
    process.env.TEST_DATABASE_URL ||
    "postgres://postgres@127.0.0.1:5432/test",
  build: true,
  keep: false,
  json: false,
  bin: DEFAULT_BIN,
};

export const USAGE = `usage: npm run chaos -- --mode embedded|postgres|redis [options]

  --seconds N        seconds of faults (default ${DEFAULTS.seconds}); heal and drain follow
  --seed S           seed of the fault timeline and the load (default: random, printed)
  --rate R           events per second (default ${DEFAULTS.rate})
  --workers N        worker processes in the postgres and redis modes (default ${DEFAULTS.workers})
  --limit N          WEBHOOK_ENDPOINT_CONCURRENCY (default ${DEFAULTS.limit})
  --drain-timeout S  bound on the drain after healing, seconds (default ${DEFAULTS.drainSeconds})
  --gap MS           mean gap between faults (default ${DEFAULTS.gapMs})
  --skip K,K         leave these fault kinds out: kill, term, pause, long-pause, redis-restart,
                     db-cut, db-delay, db-stall, db-blackhole, receiver, webhook-events,
                     webhook-url, webhook-disable
  --database-url U   PostgreSQL server (default $CHAOS_DATABASE_URL, $TEST_DATABASE_URL or
                     postgres://postgres@127.0.0.1:5432/test); each run makes its own schema
  --bin PATH         bin/continuum-webhooks.js of another build (to check a fix, or bisect);
                     implies --no-build
  --no-build         do not run \`npm run build\` first
  --keep             keep the run directory and schema even when the campaign passes
  --json             print the result as one JSON object on stdout
`;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): CampaignOptions | "help" {
  const o: Partial<CampaignOptions> = {};
  const num = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`${flag} expects a whole number from ${min} to ${max}, got ${v ?? "nothing"}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--mode": {
        const m = value();
        if (m !== "embedded" && m !== "postgres" && m !== "redis")
          throw new UsageError(`--mode expects embedded, postgres or redis, got ${m ?? "nothing"}`);
        o.mode = m;
        break;
      }
      case "--seconds":
        o.seconds = num(flag, value(), 5, 3600);
        break;
      case "--seed":
        o.seed = num(flag, value(), 0, 0xffffffff);
        break;
      case "--rate":
        o.rate = num(flag, value(), 1, 2000);
        break;
      case "--workers":
        o.workers = num(flag, value(), 1, 8);
        break;
      case "--limit":
        o.limit = num(flag, value(), 1, 1000);
        break;
      case "--drain-timeout":
        o.drainSeconds = num(flag, value(), 5, 3600);
        break;
      case "--gap":
        o.gapMs = num(flag, value(), 100, 600_000);
        break;
      case "--skip":
        o.skip = (value() ?? "").split(",").filter(Boolean);
        break;
      case "--database-url":
        o.databaseUrl = value() ?? "";
        break;
      case "--bin":
        o.bin = value() ?? "";
        o.build = false;
        break;
      case "--no-build":
        o.build = false;
        break;
      case "--keep":
        o.keep = true;
        break;
      case "--json":
        o.json = true;
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  }
  if (!o.mode) throw new UsageError("--mode is required (embedded, postgres or redis)");
  return { ...DEFAULTS, seed: Math.floor(Math.random() * 0xffffffff), ...o, mode: o.mode };
}

/** The command that runs this campaign again: same seed, same timeline. */
export function rerunCommand(o: CampaignOptions): string {
  const parts = ["npm run chaos --", `--mode ${o.mode}`, `--seconds ${o.seconds}`, `--seed ${o.seed}`];
  if (o.rate !== DEFAULTS.rate) parts.push(`--rate ${o.rate}`);
  if (o.workers !== DEFAULTS.workers && o.mode !== "embedded") parts.push(`--workers ${o.workers}`);
  if (o.limit !== DEFAULTS.limit) parts.push(`--limit ${o.limit}`);
  if (o.gapMs !== DEFAULTS.gapMs) parts.push(`--gap ${o.gapMs}`);
  if (o.drainSeconds !== DEFAULTS.drainSeconds) parts.push(`--drain-timeout ${o.drainSeconds}`);
  if (o.skip.length > 0) parts.push(`--skip ${o.skip.join(",")}`);
  if (o.bin !== DEFAULT_BIN) parts.push(`--bin ${o.bin}`);
  return parts.join(" ");
}
