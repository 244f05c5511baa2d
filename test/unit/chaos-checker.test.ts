/**
 * The chaos checker (scripts/chaos/checker.ts) on synthetic histories: a clean one passes, and
 * each broken guarantee — a lost event, an unexpected one, an over-limit in-flight count, a
 * success never received, a bad signature, a delivery left pending, an idempotency violation —
 * is flagged, so the campaign cannot pass by checking nothing.
 */
import { describe, expect, it } from "vitest";
import { check, stateDuring } from "../../scripts/chaos/checker.js";
import type { EmitRecord, Receipt, RunHistory, WebhookHistory } from "../../scripts/chaos/history.js";

const T = 1_000_000;

function webhook(name: string, userId: string, events: string[]): WebhookHistory {
  return {
    name,
    id: `whk_${name}`,
    userId,
    secret: "whsec_x",
    initial: { active: true, events, path: `/w/${name}/0` },
    changes: [],
  };
}

function emit(n: number, userId: string, event: string, at = T + n * 100): EmitRecord {
  return {
    key: `k${n}`,
    userId,
    event,
    firstSentAt: at,
    lastEndedAt: at + 20,
    ackedAt: at + 20,
    eventId: `evt_${n}`,
    deliveries: 1,
    attempts: 1,
    refused: null,
    lastError: null,
    duplicate: false,
    failedAnswers: [],
  };
}

function receipt(w: WebhookHistory, e: EmitRecord, overrides: Partial<Receipt> = {}): Receipt {
  return {
    webhook: w.name,
    path: w.initial.path,
    deliveryId: `dlv_${e.key}_${w.name}`,
    eventId: e.eventId,
    event: e.event,
    userId: e.userId,
    key: e.key,
    receivedAt: (e.ackedAt ?? 0) + 50,
    reply: "ok",
    delivered: true,
    signatureOk: true,
    signatureError: null,
    ...overrides,
  };
}

/** Two users; `a` takes everything of u1, `b` only memory.created of u1, `c` everything of u2. */
function cleanHistory(): RunHistory {
  const a = webhook("a", "u1", ["*"]);
  const b = webhook("b", "u1", ["memory.created"]);
  const c = webhook("c", "u2", ["*"]);
  const emits = [
    emit(1, "u1", "memory.created"),
    emit(2, "u1", "sync.failed"),
    emit(3, "u2", "memory.created"),
    emit(4, "u2", "quota.exceeded"),
  ];
  const pairs: Array<[WebhookHistory, EmitRecord]> = [
    [a, emits[0]!],
    [b, emits[0]!],
    [a, emits[1]!],
    [c, emits[2]!],
    [c, emits[3]!],
  ];
  const receipts = pairs.map(([w, e]) => receipt(w, e));
  return {
    mode: "embedded",
    limit: 10,
    ambiguityMs: 500,
    webhooks: [a, b, c],
    emits,
    receipts,
    inFlight: { a: { max: 3, at: T }, b: { max: 1, at: T }, c: { max: 10, at: T } },
    db: {
      deliveries: pairs.map(([w, e]) => ({
        id: `dlv_${e.key}_${w.name}`,
        webhookId: w.id,
        eventId: e.eventId,
        status: "success",
        attempts: 1,
        nextRetryAt: null,
        errorMessage: null,
      })),
      events: emits.map((e) => ({ id: e.eventId!, userId: e.userId, event: e.event, idempotencyKey: e.key })),
      webhooks: [a, b, c].map((w) => ({
        id: w.id,
        active: true,
        events: [...w.initial.events],
        url: `http://127.0.0.1:9${w.initial.path}`,
      })),
    },
    drain: { drained: true, ms: 1500, lastDepth: 0, lastWaiting: 0 },
    healProblems: [],
  };
}

/** The database's webhook rows as the history's last changes left them. */
function settle(h: RunHistory): RunHistory {
  for (const w of h.webhooks) {
    const row = h.db.webhooks.find((r) => r.id === w.id)!;
    const st = w.changes.at(-1)?.to ?? w.initial;
    Object.assign(row, { active: st.active, events: [...st.events], url: `http://127.0.0.1:9${st.path}` });
  }
  return h;
}

describe("chaos checker", () => {
  it("passes a clean history, counting what it checked", () => {
    const v = check(cleanHistory());
    expect(v.failures).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.counts).toMatchObject({
      acknowledged: 4,
      expected: 5,
      delivered: 5,
      lost: 0,
      unexpected: 0,
      duplicated: 0,
      maxInFlight: 10,
    });
  });

  it("counts a redelivery as a duplicate, not a failure", () => {
    const h = cleanHistory();
    h.receipts.push({ ...h.receipts[0]!, receivedAt: T + 9999 });
    const v = check(h);
    expect(v.ok).toBe(true);
    expect(v.counts.duplicated).toBe(1);
  });

  it("flags a lost event, naming why the database says it was lost", () => {
    const h = cleanHistory();
    h.receipts.splice(1, 1); // b never got k1
    h.db.deliveries[1]!.status = "dead_letter";
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.counts.lost).toBe(1);
    expect(v.lostByCause).toEqual({ "dead-lettered": 1 });
    expect(v.failures.join()).toMatch(/lost 1/);
  });

  it("flags a lost event that only failed answers reached (a 5xx is not a delivery)", () => {
    const h = cleanHistory();
    h.receipts[2] = { ...h.receipts[2]!, reply: "error", delivered: false };
    h.db.deliveries[2]!.status = "pending";
    h.db.deliveries[2]!.nextRetryAt = new Date(T).toISOString();
    const v = check(h);
    expect(v.counts.lost).toBe(1);
    expect(v.counts.stuck).toBe(1);
    expect(v.ok).toBe(false);
  });

  it("flags an acknowledged event for which no delivery row was made", () => {
    const h = cleanHistory();
    h.receipts.splice(3, 1);
    h.db.deliveries.splice(3, 1);
    const v = check(h);
    expect(v.lostByCause).toEqual({ "no delivery row was created": 1 });
  });

  it("does not expect an event that was never acknowledged, but allows it to arrive", () => {
    const h = cleanHistory();
    const e = h.emits[3]!;
    e.ackedAt = null;
    e.eventId = null;
    const v = check(h);
    expect(v.ok).toBe(true);
    expect(v.counts.unacknowledged).toBe(1);
    expect(v.counts.expected).toBe(4);
  });

  it("flags an event that was never emitted", () => {
    const h = cleanHistory();
    h.receipts.push(receipt(h.webhooks[0]!, emit(99, "u1", "memory.created")));
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.unexpectedByCause).toEqual({ "never emitted": 1 });
  });

  it("flags an event at a webhook not subscribed to its type", () => {
    const h = cleanHistory();
    const [, b] = h.webhooks;
    h.receipts.push(receipt(b!, h.emits[1]!)); // sync.failed to b (memory.created only)
    const v = check(h);
    expect(v.counts.unexpected).toBe(1);
    expect(v.unexpectedByCause).toEqual({ "emitted while the webhook was not subscribed to it": 1 });
  });

  it("flags another user's event", () => {
    const h = cleanHistory();
    h.receipts.push(receipt(h.webhooks[2]!, h.emits[0]!)); // u1's event at u2's webhook
    expect(check(h).unexpectedByCause).toEqual({ "another user's event": 1 });
  });

  it("flags an event emitted while the webhook was disabled, and does not expect it there", () => {
    const h = cleanHistory();
    const a = h.webhooks[0]!;
    const e = h.emits[1]!; // at T+200
    a.changes.push({
      sentAt: T - 5000,
      ackedAt: T - 4990,
      to: { ...a.initial, active: false },
      sets: ["active"],
      what: "disable",
    });
    a.changes.push({
      sentAt: T + 5000,
      ackedAt: T + 5010,
      to: { ...a.initial, active: true },
      sets: ["active"],
      what: "enable",
    });
    let v = check(h);
    expect(v.unexpectedByCause["emitted while the webhook was disabled"]).toBeGreaterThan(0);
    // Without the receipts it is simply not expected: no loss.
    h.receipts = h.receipts.filter((r) => r.webhook !== "a");
    h.db.deliveries = h.db.deliveries.filter((d) => d.webhookId !== a.id);
    v = check(h);
    expect(v.ok).toBe(true);
    expect(v.counts.expected).toBe(3);
    expect(e.key).toBe("k2");
  });

  it("excludes events around a change from both lost and unexpected, and counts them", () => {
    const h = cleanHistory();
    const b = h.webhooks[1]!;
    const e = h.emits[0]!; // [T+100, T+120]
    b.changes.push({
      sentAt: T + 400,
      ackedAt: T + 450,
      to: { ...b.initial, events: ["sync.failed"] },
      sets: ["events"],
      what: "events",
    });
    expect(stateDuring(b, e.firstSentAt, e.ackedAt!, 500)).toBe("ambiguous");
    // The emit read the new subscription: no delivery for b at all.
    h.receipts = h.receipts.filter((r) => !(r.webhook === "b" && r.key === "k1"));
    h.db.deliveries = h.db.deliveries.filter((d) => d.id !== "dlv_k1_b");
    const v = check(settle(h));
    expect(v.ok).toBe(true);
    expect(v.counts.ambiguous).toBeGreaterThan(0);
    // Beyond the margin, the same loss counts.
    b.changes[0] = { ...b.changes[0]!, sentAt: T + 5000, ackedAt: T + 5050 };
    expect(check(settle(h)).counts.lost).toBe(1);
  });

  it("holds an ambiguous event to the delivery the database made for it", () => {
    const h = cleanHistory();
    const b = h.webhooks[1]!;
    b.changes.push({
      sentAt: T + 400,
      ackedAt: T + 450,
      to: { ...b.initial, events: ["sync.failed"] },
      sets: ["events"],
      what: "events",
    });
    // The row for (k1, b) exists but b never got it: lost, ambiguity or not.
    h.receipts = h.receipts.filter((r) => !(r.webhook === "b" && r.key === "k1"));
    h.db.deliveries.find((d) => d.id === "dlv_k1_b")!.status = "dead_letter";
    const v = check(settle(h));
    expect(v.counts.ambiguousChecked).toBe(1);
    expect(v.counts.lost).toBe(1);
    expect(v.ok).toBe(false);
  });

  it("uses the subscription in force at emit time, after a change", () => {
    const h = cleanHistory();
    const b = h.webhooks[1]!;
    b.changes.push({
      sentAt: T - 5000,
      ackedAt: T - 4000,
      to: { ...b.initial, events: ["sync.failed"] },
      sets: ["events"],
      what: "events",
    });
    const v = check(settle(h));
    // k1 (memory.created) is now unexpected at b, and k2 (sync.failed) is lost there.
    expect(v.counts.unexpected).toBe(1);
    expect(v.counts.lost).toBe(1);
  });

  it("flags an over-limit in-flight count", () => {
    const h = cleanHistory();
    h.inFlight.c = { max: 11, at: T };
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.counts.maxInFlight).toBe(11);
    expect(v.failures.join()).toMatch(/max in flight 11 > limit 10/);
  });

  it("flags a delivery marked success that its receiver never got", () => {
    const h = cleanHistory();
    h.emits.push(emit(5, "u2", "memory.created"));
    h.db.events.push({ id: "evt_5", userId: "u2", event: "memory.created", idempotencyKey: "k5" });
    h.db.deliveries.push({
      id: "dlv_ghost",
      webhookId: "whk_c",
      eventId: "evt_5",
      status: "success",
      attempts: 1,
      nextRetryAt: null,
      errorMessage: null,
    });
    const v = check(h);
    expect(v.counts.successUnseen).toBe(1);
    expect(v.lostByCause).toEqual({ "marked success but never received": 1 });
    expect(v.ok).toBe(false);
  });

  it("flags a success whose only receipt was answered with an error", () => {
    const h = cleanHistory();
    h.receipts[4] = { ...h.receipts[4]!, reply: "reset", delivered: false };
    const v = check(h);
    expect(v.counts.successUnseen).toBe(1);
  });

  it("flags an invalid signature", () => {
    const h = cleanHistory();
    h.receipts[0] = {
      ...h.receipts[0]!,
      signatureOk: false,
      signatureError: "X-Continuum-Signature does not match",
    };
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.counts.badSignatures).toBe(1);
  });

  it("flags a queue that did not drain and deliveries left pending", () => {
    const h = cleanHistory();
    h.drain = { drained: false, ms: 120_000, lastDepth: 3, lastWaiting: 3 };
    h.db.deliveries[0]!.status = "failed";
    h.db.deliveries[0]!.nextRetryAt = new Date(T).toISOString();
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.counts.stuck).toBe(1);
    expect(v.failures.join()).toMatch(/did not drain/);
  });

  it("flags a webhook that does not end as its last acknowledged PATCH left it", () => {
    const h = cleanHistory();
    const a = h.webhooks[0]!;
    a.changes.push({
      sentAt: T + 9000,
      ackedAt: T + 9010,
      to: { ...a.initial, active: false },
      sets: ["active"],
      what: "disable",
    });
    a.changes.push({
      sentAt: T + 9100,
      ackedAt: T + 9110,
      to: { ...a.initial, active: true },
      sets: ["active"],
      what: "enable",
    });
    expect(check(h).ok).toBe(true);
    // An abandoned "disable" applied after the acknowledged "enable":
    h.db.webhooks[0]!.active = false;
    const v = check(h);
    expect(v.counts.stateMismatches).toBe(1);
    expect(v.ok).toBe(false);
  });

  it("does not hold a webhook to a field whose last PATCH was never confirmed", () => {
    const h = cleanHistory();
    const a = h.webhooks[0]!;
    // A URL change that was never answered (it may or may not have been applied)…
    a.changes.push({
      sentAt: T + 9000,
      ackedAt: Number.MAX_SAFE_INTEGER,
      to: { ...a.initial, path: "/w/a/1" },
      sets: ["path"],
      what: "url → /w/a/1 (never confirmed)",
    });
    // …then an acknowledged events change, which carries the unconfirmed path along in `to`.
    a.changes.push({
      sentAt: T + 9100,
      ackedAt: T + 9110,
      to: { ...a.initial, path: "/w/a/1", events: ["sync.failed"] },
      sets: ["events"],
      what: "events",
    });
    h.db.webhooks[0]!.events = ["sync.failed"];
    expect(check(h).counts.stateMismatches).toBe(0); // still at the initial path: allowed
    h.db.webhooks[0]!.url = "http://127.0.0.1:9/w/a/1";
    expect(check(h).counts.stateMismatches).toBe(0); // or at the unconfirmed one's: allowed
    h.db.webhooks[0]!.url = "http://127.0.0.1:9/w/a/7";
    expect(check(h).counts.stateMismatches).toBe(1); // at neither: a garbled update
    h.db.webhooks[0]!.url = "http://127.0.0.1:9/w/a/1";
    // The field that was confirmed is still checked.
    h.db.webhooks[0]!.events = ["memory.created"];
    expect(check(h).counts.stateMismatches).toBe(1);
  });

  it("flags a heal that could not complete", () => {
    const h = cleanHistory();
    h.healProblems = ["re-enabling webhook a: PATCH /api/v1/webhooks/whk_a: 500 until the deadline"];
    const v = check(h);
    expect(v.ok).toBe(false);
    expect(v.failures.join()).toMatch(/healing did not complete/);
  });

  it("flags one idempotency key acknowledged as one event and delivered as another", () => {
    const h = cleanHistory();
    h.receipts[0] = { ...h.receipts[0]!, eventId: "evt_other" };
    const v = check(h);
    expect(v.counts.idempotencyViolations).toBeGreaterThan(0);
    expect(v.ok).toBe(false);
  });

  it("counts an emit answered 500 that had been written, without failing the run", () => {
    const h = cleanHistory();
    Object.assign(h.emits[0]!, { duplicate: true, failedAnswers: ["500"], attempts: 2 });
    Object.assign(h.emits[1]!, { duplicate: true, failedAnswers: ["timeout"], attempts: 2 });
    const v = check(h);
    expect(v.counts.committedDespite5xx).toBe(1);
    expect(v.ok).toBe(true);
  });

  it("flags a valid emit refused with a 4xx, and a run that acknowledged nothing", () => {
    const h = cleanHistory();
    h.emits[0]!.refused = "409 conflict";
    expect(check(h).failures.join()).toMatch(/refused/);
    const empty = { ...cleanHistory(), emits: [], receipts: [] };
    empty.db = { ...empty.db, deliveries: [], events: [] };
    expect(check(empty).failures.join()).toMatch(/nothing was acknowledged/);
  });
});
