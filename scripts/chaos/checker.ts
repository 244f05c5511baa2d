/**
 * Why this exists: the verdict of a campaign, computed from its recorded history alone (no I/O),
 * so it can be unit-tested on synthetic histories. It checks the product's delivery guarantees:
 *
 * - lost = 0: every acknowledged event (202) reached, with a 2xx answer, every webhook that was
 *   subscribed to it when it was emitted (active, and its events include the type or "*");
 * - unexpected = 0: nothing arrived that was never emitted, at a webhook not subscribed at emit
 *   time, for another user, or on a path the webhook never had;
 * - in flight ≤ the per-webhook limit at every receiver;
 * - every delivery the database marks `success` was received with a 2xx;
 * - nothing pending once healed and drained;
 * - every request's signatures valid; one event per idempotency key.
 *
 * "Emitted at" is an interval: from the first attempt's send (an attempt that timed out may have
 * committed) to the 202. A webhook change is an interval too (first PATCH sent → answer). An
 * event whose interval comes within `ambiguityMs` of a change of webhook W is ambiguous for W:
 * either answer is legal, so the service's own choice is held against it — if the database has
 * a delivery row for that event and W, the event must reach W (counted in `ambiguousChecked`);
 * if it has none, the event is not expected there. Arrivals of ambiguous events are never
 * unexpected. Duplicates are allowed (at-least-once) and counted.
 */
import type { EmitRecord, Receipt, RunHistory, SubscriptionState, WebhookHistory } from "./history.js";

export interface Verdict {
  ok: boolean;
  counts: {
    acknowledged: number;
    /** Emits attempted but never acknowledged (allowed to arrive, not expected to). */
    unacknowledged: number;
    refused: number;
    /** (event, webhook) pairs that must arrive. */
    expected: number;
    /** Of those, received with a 2xx. */
    delivered: number;
    lost: number;
    /** 2xx receipts beyond the first per (event, webhook). */
    duplicated: number;
    unexpected: number;
    /** (event, webhook) pairs emitted within the margin of a change of that webhook. */
    ambiguous: number;
    /** Of those, the ones the database made a delivery for: expected like any other. */
    ambiguousChecked: number;
    maxInFlight: number;
    limit: number;
    successUnseen: number;
    stuck: number;
    badSignatures: number;
    idempotencyViolations: number;
    requests: number;
    deadLettered: number;
    /**
     * Emits answered 5xx although they had been written (a retry with the same key was told
     * `duplicate: true`). Not a delivery guarantee — the idempotency key makes the retry safe —
     * but an answer that misinforms a producer without one.
     */
    committedDespite5xx: number;
    /** Webhooks whose settings in the database differ from their last acknowledged change. */
    stateMismatches: number;
  };
  /** Why each lost pair was lost, as the database tells it. */
  lostByCause: Record<string, number>;
  unexpectedByCause: Record<string, number>;
  inFlightByWebhook: Record<string, number>;
  drainMs: number;
  drained: boolean;
  /** One line per broken guarantee. */
  failures: string[];
  /** A few concrete cases per broken guarantee, for diagnosis. */
  examples: Record<string, string[]>;
}

const EXAMPLES = 5;

export function subscribed(state: SubscriptionState, event: string): boolean {
  return state.active && (state.events.includes("*") || state.events.includes(event));
}

/** The webhook's state for an event emitted within [from, to], or "ambiguous". */
export function stateDuring(
  w: WebhookHistory,
  from: number,
  to: number,
  marginMs: number,
): SubscriptionState | "ambiguous" {
  let state = w.initial;
  for (const c of [...w.changes].sort((x, y) => x.sentAt - y.sentAt)) {
    if (c.sentAt <= to + marginMs && c.ackedAt >= from - marginMs) return "ambiguous";
    if (c.ackedAt < from) state = c.to;
  }
  return state;
}

function emitWindow(e: EmitRecord): [number, number] {
  return [e.firstSentAt, e.ackedAt ?? e.lastEndedAt];
}

export function check(h: RunHistory): Verdict {
  const byKey = new Map(h.emits.map((e) => [e.key, e]));
  const hookByName = new Map(h.webhooks.map((w) => [w.name, w]));
  const hookById = new Map(h.webhooks.map((w) => [w.id, w]));
  const examples: Record<string, string[]> = {};
  const note = (what: string, line: string) => {
    examples[what] ??= [];
    if (examples[what].length < EXAMPLES) examples[what].push(line);
  };
  const bump = (m: Record<string, number>, k: string) => {
    m[k] = (m[k] ?? 0) + 1;
  };

  // 2xx receipts per (webhook, key), and every delivery id each receiver answered 2xx to.
  const deliveredPairs = new Map<string, number>();
  const deliveredIds = new Map<string, Set<string>>();
  const deliveryIdsPerPair = new Map<string, Set<string>>();
  let badSignatures = 0;
  for (const r of h.receipts) {
    if (!r.signatureOk) {
      badSignatures++;
      note("badSignatures", `${r.webhook} ${r.deliveryId}: ${r.signatureError ?? "invalid"}`);
    }
    if (!r.delivered) continue;
    const pair = `${r.webhook}|${r.key}`;
    deliveredPairs.set(pair, (deliveredPairs.get(pair) ?? 0) + 1);
    setFor(deliveredIds, r.webhook).add(r.deliveryId);
  }
  for (const r of h.receipts) {
    setFor(deliveryIdsPerPair, `${r.webhook}|${r.key}`).add(r.deliveryId);
  }

  // Database rows by (event id, webhook id).
  const rowsByPair = new Map<string, RunHistory["db"]["deliveries"]>();
  for (const d of h.db.deliveries) {
    const k = `${d.eventId}|${d.webhookId}`;
    const list = rowsByPair.get(k);
    if (list) list.push(d);
    else rowsByPair.set(k, [d]);
  }
  const eventIds = new Set(h.db.events.map((e) => e.id));

  // lost
  let committedDespite5xx = 0;
  let acknowledged = 0;
  let unacknowledged = 0;
  let refused = 0;
  let expected = 0;
  let delivered = 0;
  let ambiguous = 0;
  let ambiguousChecked = 0;
  const lostByCause: Record<string, number> = {};
  for (const e of h.emits) {
    if (e.refused) {
      refused++;
      note("refused", `${e.key} (${e.event} for ${e.userId}): ${e.refused}`);
    }
    if (e.ackedAt === null) {
      unacknowledged++;
      continue;
    }
    acknowledged++;
    if (e.duplicate && e.failedAnswers.some((a) => a.startsWith("5"))) {
      committedDespite5xx++;
      note(
        "committedDespite5xx",
        `${e.key} (${e.eventId}): answered ${e.failedAnswers.join(", ")}, then duplicate`,
      );
    }
    const [from, to] = emitWindow(e);
    for (const w of h.webhooks) {
      if (w.userId !== e.userId) continue;
      const st = stateDuring(w, from, to, h.ambiguityMs);
      if (st === "ambiguous") {
        ambiguous++;
        if (!rowsByPair.has(`${e.eventId}|${w.id}`)) continue;
        ambiguousChecked++;
      } else if (!subscribed(st, e.event)) continue;
      expected++;
      if (deliveredPairs.has(`${w.name}|${e.key}`)) {
        delivered++;
        continue;
      }
      const cause = lostCause(e, w, rowsByPair, eventIds);
      bump(lostByCause, cause);
      note("lost", `${e.key} ${e.event} ${e.eventId} → webhook ${w.name} (${w.id}): ${cause}`);
    }
  }
  const lost = expected - delivered;

  // unexpected (per distinct webhook + delivery id) and idempotency
  const unexpectedByCause: Record<string, number> = {};
  const seen = new Set<string>();
  const paths = new Map(
    h.webhooks.map((w) => [w.name, new Set([w.initial.path, ...w.changes.map((c) => c.to.path)])]),
  );
  let idempotencyViolations = 0;
  for (const r of h.receipts) {
    const id = `${r.webhook}|${r.deliveryId}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const cause = unexpectedCause(r, h, byKey, hookByName, paths);
    if (cause === "idempotency") {
      idempotencyViolations++;
      note(
        "idempotency",
        `${r.webhook} got event ${r.eventId} for key ${r.key}, acknowledged as another event`,
      );
    } else if (cause !== null) {
      bump(unexpectedByCause, cause);
      note("unexpected", `${r.webhook} ${r.deliveryId} ${r.event} ${r.key}: ${cause}`);
    }
  }
  for (const [pair, ids] of deliveryIdsPerPair) {
    if (ids.size > 1 && !pair.endsWith("|null")) {
      idempotencyViolations++;
      note("idempotency", `${pair}: ${ids.size} different deliveries of one event to one webhook`);
    }
  }
  const unexpected = Object.values(unexpectedByCause).reduce((s, n) => s + n, 0);

  // duplicates
  let duplicated = 0;
  for (const n of deliveredPairs.values()) duplicated += n - 1;

  // success never seen
  let successUnseen = 0;
  let stuck = 0;
  let deadLettered = 0;
  for (const d of h.db.deliveries) {
    const w = hookById.get(d.webhookId);
    if (d.status === "success" && !(w && deliveredIds.get(w.name)?.has(d.id))) {
      successUnseen++;
      note(
        "successUnseen",
        `${d.id} (webhook ${w?.name ?? d.webhookId}, event ${d.eventId}, attempts ${d.attempts})`,
      );
    }
    if (d.status === "pending" || (d.status === "failed" && d.nextRetryAt !== null)) {
      stuck++;
      note(
        "stuck",
        `${d.id} (webhook ${w?.name ?? d.webhookId}) ${d.status}, next ${d.nextRetryAt}, attempts ${d.attempts}`,
      );
    }
    if (d.status === "dead_letter") deadLettered++;
  }

  // every webhook ends as its last acknowledged change left it: each field as the last confirmed
  // PATCH that set it says, or as one of the unconfirmed PATCHes after that one (each may or may
  // not have been applied) — anything else is a lost or garbled update
  let stateMismatches = 0;
  const rowById = new Map(h.db.webhooks.map((r) => [r.id, r]));
  const key = (field: keyof SubscriptionState, s: SubscriptionState) =>
    field === "events" ? [...s.events].sort().join(",") : String(s[field]);
  for (const w of h.webhooks) {
    const last = w.changes.at(-1);
    const want = last?.to ?? w.initial;
    const allowed = (field: keyof SubscriptionState): Set<string> => {
      const out = new Set<string>();
      for (let i = w.changes.length - 1; i >= 0; i--) {
        const c = w.changes[i]!;
        if (!c.sets.includes(field)) continue;
        out.add(key(field, c.to));
        if (c.ackedAt !== Number.MAX_SAFE_INTEGER) return out;
      }
      out.add(key(field, w.initial));
      return out;
    };
    const row = rowById.get(w.id);
    const path = row ? new URL(row.url).pathname : null;
    const same =
      row !== undefined &&
      path !== null &&
      allowed("active").has(String(row.active)) &&
      allowed("path").has(path) &&
      allowed("events").has([...row.events].sort().join(","));
    if (!same) {
      stateMismatches++;
      note(
        "stateMismatch",
        `webhook ${w.name}: last acknowledged ${JSON.stringify(want)}` +
          (last ? ` (${last.what}, answered at ${last.ackedAt})` : "") +
          `, database has ${row ? JSON.stringify({ active: row.active, events: row.events, path }) : "no row"}`,
      );
    }
  }

  // in flight
  const inFlightByWebhook: Record<string, number> = {};
  let maxInFlight = 0;
  for (const w of h.webhooks) {
    const peak = h.inFlight[w.name]?.max ?? 0;
    inFlightByWebhook[w.name] = peak;
    maxInFlight = Math.max(maxInFlight, peak);
    if (peak > h.limit) note("inFlight", `webhook ${w.name}: ${peak} in flight at ${h.inFlight[w.name]?.at}`);
  }

  const failures: string[] = [];
  if (lost > 0) failures.push(`lost ${lost}: ${describe(lostByCause)}`);
  if (unexpected > 0) failures.push(`unexpected ${unexpected}: ${describe(unexpectedByCause)}`);
  if (idempotencyViolations > 0) failures.push(`idempotency violated ${idempotencyViolations} times`);
  if (maxInFlight > h.limit) failures.push(`max in flight ${maxInFlight} > limit ${h.limit}`);
  if (successUnseen > 0) failures.push(`${successUnseen} deliveries marked success were never received`);
  if (stateMismatches > 0)
    failures.push(
      `${stateMismatches} webhooks do not end as their last acknowledged PATCH left them (a request applied after a later one?)`,
    );
  if (h.healProblems.length > 0) failures.push(`healing did not complete: ${h.healProblems.join("; ")}`);
  if (!h.drain.drained)
    failures.push(
      `queue did not drain within ${(h.drain.ms / 1000).toFixed(0)} s (` +
        `${h.drain.lastDepth === null ? "GET /health gave no queue depth" : `queue depth ${h.drain.lastDepth}`}, ` +
        `waiting rows ${h.drain.lastWaiting ?? "unreadable"})`,
    );
  if (stuck > 0) failures.push(`${stuck} deliveries still pending after healing`);
  if (badSignatures > 0) failures.push(`${badSignatures} requests with an invalid signature`);
  if (refused > 0) failures.push(`${refused} valid emits refused with a 4xx`);
  if (acknowledged === 0) failures.push("nothing was acknowledged: the campaign tested nothing");

  return {
    ok: failures.length === 0,
    counts: {
      acknowledged,
      unacknowledged,
      refused,
      expected,
      delivered,
      lost,
      duplicated,
      unexpected,
      ambiguous,
      ambiguousChecked,
      maxInFlight,
      limit: h.limit,
      successUnseen,
      stuck,
      badSignatures,
      idempotencyViolations,
      requests: h.receipts.length,
      deadLettered,
      committedDespite5xx,
      stateMismatches,
    },
    lostByCause,
    unexpectedByCause,
    inFlightByWebhook,
    drainMs: h.drain.ms,
    drained: h.drain.drained,
    failures,
    examples,
  };
}

function setFor(m: Map<string, Set<string>>, key: string): Set<string> {
  let set = m.get(key);
  if (!set) {
    set = new Set();
    m.set(key, set);
  }
  return set;
}

function describe(m: Record<string, number>): string {
  return Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
}

function lostCause(
  e: EmitRecord,
  w: WebhookHistory,
  rowsByPair: Map<string, RunHistory["db"]["deliveries"]>,
  eventIds: Set<string>,
): string {
  if (e.eventId && !eventIds.has(e.eventId)) return "acknowledged event missing from the database";
  const rows = rowsByPair.get(`${e.eventId}|${w.id}`) ?? [];
  if (rows.length === 0) return "no delivery row was created";
  const row = rows[0]!;
  if (row.status === "success") return "marked success but never received";
  if (row.status === "dead_letter") return "dead-lettered";
  if (row.status === "pending" || row.nextRetryAt !== null) return "still pending";
  if (row.errorMessage?.includes("disabled"))
    return "stopped (failed, no retry) when the webhook was disabled";
  return `failed with no retry scheduled (${row.errorMessage ?? "no message"})`;
}

function unexpectedCause(
  r: Receipt,
  h: RunHistory,
  byKey: Map<string, EmitRecord>,
  hookByName: Map<string, WebhookHistory>,
  paths: Map<string, Set<string>>,
): string | "idempotency" | null {
  const w = hookByName.get(r.webhook);
  if (!w) return "at a receiver of no webhook";
  const emit = r.key === null ? undefined : byKey.get(r.key);
  if (!emit) return "never emitted";
  const pathOnly = r.path.split("?")[0] ?? r.path;
  if (!paths.get(w.name)?.has(pathOnly)) return "on a path the webhook never had";
  if (r.userId !== w.userId || emit.userId !== w.userId) return "another user's event";
  if (r.event !== emit.event) return "event type differs from the one emitted";
  if (emit.eventId !== null && r.eventId !== emit.eventId) return "idempotency";
  const [from, to] = emitWindow(emit);
  const st = stateDuring(w, from, to, h.ambiguityMs);
  if (st === "ambiguous") return null;
  if (!st.active) return "emitted while the webhook was disabled";
  if (!subscribed(st, emit.event)) return "emitted while the webhook was not subscribed to it";
  return null;
}
