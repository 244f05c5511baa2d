/**
 * Why this exists: what a person (or a machine, with --json) reads after a campaign — the seed,
 * the fault timeline, the results table, the notes that qualify it, every broken guarantee with
 * examples, and the exact command to run it again.
 */
import type { CampaignResult } from "./campaign.js";
import { describeFault } from "./faults.js";

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const at = (ms: number) => `t+${(ms / 1000).toFixed(2).padStart(7)}s`;

export function formatText(r: CampaignResult): string {
  const o = r.options;
  const v = r.verdict;
  const c = v.counts;
  const lines: string[] = [];
  lines.push(
    `chaos campaign  mode=${o.mode}  seed=${o.seed}  seconds=${o.seconds}  rate=${o.rate}/s` +
      (o.mode === "embedded" ? "" : `  workers=${o.workers}`) +
      `  limit=${o.limit}`,
    "",
    "fault timeline (planned from the seed):",
  );
  for (const f of r.planned) lines.push(`  ${at(f.at)}  ${describeFault(f.fault)}`);
  if (r.planned.length === 0) lines.push("  (none)");
  lines.push("", "as executed:");
  for (const e of r.executed) lines.push(`  ${at(e.at)}  ${e.text}`);
  const rows: Array<[string, string, string]> = [
    [
      "acknowledged",
      String(c.acknowledged),
      `events answered 202 (${c.unacknowledged} attempted, never acknowledged)`,
    ],
    [
      "delivered",
      String(c.delivered),
      `of ${c.expected} (event, webhook) pairs expected; ${c.requests} requests in all`,
    ],
    ["lost", String(c.lost), describe(v.lostByCause)],
    ["duplicated", String(c.duplicated), "2xx receipts beyond the first (at-least-once: allowed)"],
    ["unexpected", String(c.unexpected), describe(v.unexpectedByCause)],
    [
      "ambiguous",
      String(c.ambiguous),
      `pairs emitted around a webhook change; ${c.ambiguousChecked} had a delivery row and were held to it`,
    ],
    [
      "max in flight",
      String(c.maxInFlight),
      `limit ${c.limit}; ${Object.entries(v.inFlightByWebhook)
        .map(([k, n]) => `${k}=${n}`)
        .join(" ")}`,
    ],
    ["success unseen", String(c.successUnseen), "marked success in the database, never received"],
    ["stuck", String(c.stuck), "still pending after the drain"],
    ["bad signatures", String(c.badSignatures), "webhook-signature or X-Continuum-Signature invalid"],
    ["idempotency", String(c.idempotencyViolations), "one key acknowledged as two events"],
    ["refused emits", String(c.refused), "valid emits answered 4xx"],
    ["webhook state", String(c.stateMismatches), "webhooks not as their last acknowledged PATCH left them"],
    ["dead-lettered", String(c.deadLettered), ""],
    [
      "5xx yet written",
      String(c.committedDespite5xx),
      "emits answered 5xx that had been written (the retry was told duplicate) — reported, not a guarantee",
    ],
    [
      "time to drain",
      v.drained ? sec(v.drainMs) : `> ${sec(v.drainMs)}`,
      `after healing (heal took ${sec(r.stats.healMs)})`,
    ],
  ];
  lines.push("", "results:");
  for (const [k, n, why] of rows) lines.push(`  ${k.padEnd(15)} ${n.padStart(8)}   ${why}`);
  lines.push(
    "",
    `database: ${
      Object.entries(r.stats.statuses)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ") || "no deliveries"
    }; ` +
      `producer: ${r.stats.producerRequests} requests, ${r.stats.producerRetries} retries` +
      (r.stats.skippedTicks > 0 ? `, ${r.stats.skippedTicks} ticks skipped (too many outstanding)` : "") +
      `; unplanned process exits: ${r.stats.unplannedExits}`,
    `emit answers: ${Object.entries(r.stats.emitAnswers)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} × ${n}`)
      .join(", ")}`,
  );
  if (r.notes.length > 0) {
    lines.push("", "notes:");
    for (const n of r.notes) lines.push(`  - ${n}`);
  }
  const misinformed = v.examples.committedDespite5xx;
  if (misinformed && v.ok) {
    lines.push("", "examples of emits answered 5xx although written:");
    for (const e of misinformed) lines.push(`  ${e}`);
  }
  lines.push("");
  if (v.ok) {
    lines.push(`PASS  (seed ${o.seed})`);
  } else {
    lines.push(`FAIL  (seed ${o.seed})`);
    for (const f of v.failures) lines.push(`  ✗ ${f}`);
    for (const [what, ex] of Object.entries(v.examples)) {
      lines.push(`  examples of ${what}:`);
      for (const e of ex) lines.push(`    ${e}`);
    }
    if (r.runDir) lines.push(`  logs: ${r.runDir}`);
  }
  lines.push(`rerun: ${r.rerun}`);
  return lines.join("\n");
}

function describe(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, n]) => `${n} ${k}`)
    .join("; ");
}

export function formatJson(r: CampaignResult): string {
  return JSON.stringify({
    ok: r.verdict.ok,
    seed: r.options.seed,
    mode: r.options.mode,
    options: { ...r.options, databaseUrl: undefined },
    rerun: r.rerun,
    timeline: r.planned.map((f) => ({ at_ms: f.at, fault: f.fault, text: describeFault(f.fault) })),
    executed: r.executed.map((e) => ({ at_ms: e.at, text: e.text })),
    counts: r.verdict.counts,
    lost_by_cause: r.verdict.lostByCause,
    unexpected_by_cause: r.verdict.unexpectedByCause,
    in_flight_by_webhook: r.verdict.inFlightByWebhook,
    drained: r.verdict.drained,
    drain_ms: r.verdict.drainMs,
    failures: r.verdict.failures,
    examples: r.verdict.examples,
    notes: r.notes,
    stats: r.stats,
    run_dir: r.runDir,
  });
}
