/**
 * The chaos campaign (scripts/chaos, `npm run chaos`) once per mode, inside `npm test`: the real
 * topology under a seeded fault timeline (SIGKILL, SIGTERM and SIGSTOP of any process, receivers
 * flapping between 2xx, 5xx, hangs and resets, webhooks PATCHed and disabled mid-flight, and in
 * the distributed modes PostgreSQL connections cut, delayed, stalled and blackholed, and Redis
 * killed and restarted empty), then healed and drained, then checked: nothing acknowledged lost,
 * nothing unexpected, never more than the per-webhook limit in flight, nothing left pending,
 * every success received, every signature valid.
 *
 * Fixed seeds, so a failure is reproducible: the assertion message is the whole report, with the
 * fault timeline and the command that runs the same campaign again (CHAOS_SEED overrides them).
 * The postgres and redis campaigns skip without TEST_DATABASE_URL (and TEST_REDIS_URL); Redis is
 * a private redis-server the campaign kills and restarts, never the shared one.
 *
 * In the postgres mode a SIGKILLed worker's leases run out only after WEBHOOK_TIMEOUT + 60 s
 * (there is no heartbeat reaping without Redis), so its drain is given longer.
 */
import { describe, expect, it } from "vitest";
import { type CampaignOptions, DEFAULTS } from "../../scripts/chaos/args.js";
import { runCampaign } from "../../scripts/chaos/campaign.js";
import { FAULT_KINDS } from "../../scripts/chaos/faults.js";
import type { Mode } from "../../scripts/chaos/history.js";
import { formatText } from "../../scripts/chaos/report.js";
import { serviceMissing, TEST_DATABASE_URL } from "../helpers/services.js";

const SECONDS = 60;
/** Seeds whose 60 s timelines hit every fault kind of their mode (asserted below). */
const SEEDS: Record<Mode, number> = { embedded: 22, postgres: 1379, redis: 2668 };
const DRAIN: Record<Mode, number> = { embedded: 45, postgres: 100, redis: 60 };
const noPostgres = serviceMissing("TEST_DATABASE_URL");
const noRedis = noPostgres || serviceMissing("TEST_REDIS_URL");

function options(mode: Mode): CampaignOptions {
  return {
    ...DEFAULTS,
    mode,
    seed: process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : SEEDS[mode],
    seconds: SECONDS,
    rate: 40,
    workers: 2,
    drainSeconds: DRAIN[mode],
    gapMs: 1500,
    databaseUrl: TEST_DATABASE_URL ?? DEFAULTS.databaseUrl,
    build: false, // the global setup built dist/
  };
}

/** Setup (storage, keys, processes), the faults, healing (bounded at 60 s), the drain bound, slack. */
const budget = (mode: Mode) => (60 + SECONDS + 60 + DRAIN[mode] + 20) * 1000;

async function campaign(mode: Mode): Promise<void> {
  const result = await runCampaign(options(mode));
  const report = formatText(result);
  console.log(report);
  const c = result.verdict.counts;
  expect(
    {
      lost: c.lost,
      unexpected: c.unexpected,
      overLimit: c.maxInFlight > c.limit,
      successUnseen: c.successUnseen,
      stuck: c.stuck,
      drained: result.verdict.drained,
      badSignatures: c.badSignatures,
      idempotencyViolations: c.idempotencyViolations,
      refused: c.refused,
    },
    report,
  ).toEqual({
    lost: 0,
    unexpected: 0,
    overLimit: false,
    successUnseen: 0,
    stuck: 0,
    drained: true,
    badSignatures: 0,
    idempotencyViolations: 0,
    refused: 0,
  });
  // The campaign really ran: events were acknowledged, delivered, and faults were injected.
  expect(c.acknowledged, report).toBeGreaterThan(SECONDS * 10);
  expect(c.delivered, report).toBeGreaterThan(0);
  expect(result.planned.length, report).toBeGreaterThan(5);
  // Every kind of fault this mode has was in the timeline, the long pause (past the lease) too.
  const kinds = new Set(result.planned.map((f) => f.fault.kind));
  const ofMode = FAULT_KINDS.filter(
    (k) => mode === "redis" || (k !== "redis-restart" && (mode === "postgres" || !k.startsWith("db-"))),
  );
  expect(
    ofMode.filter((k) => !kinds.has(k)),
    report,
  ).toEqual([]);
  expect(
    result.planned.some((f) => f.fault.kind === "pause" && f.fault.long),
    report,
  ).toBe(true);
  expect(result.verdict.ok, report).toBe(true);
}

describe("chaos campaign: faults, heal, drain, check", () => {
  it("embedded: serve on SQLite", () => campaign("embedded"), budget("embedded"));
  it.skipIf(noPostgres)(
    "postgres: serve --no-workers + 2 workers, PostgreSQL through a faulty link",
    () => campaign("postgres"),
    budget("postgres"),
  );
  it.skipIf(noRedis)(
    "redis: serve --no-workers + 2 workers, PostgreSQL and a Redis that restarts empty",
    () => campaign("redis"),
    budget("redis"),
  );
});
