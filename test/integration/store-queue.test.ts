/**
 * Storage conformance, the queue statements each backend has of its own: SQLite's (the embedded
 * queue and its engine lock) and PostgreSQL's (claims under advisory locks, the Redis queue's
 * leases and recovery sweep), after the two both have (readyWebhooks, depth).
 * Time is passed explicitly, so leases and due times are tested without waiting.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/ids.js";
import type { ClaimedDelivery, ClaimRequest } from "../../src/queue/queue.js";
import type { PostgresStore, SqliteStore, Store } from "../../src/store/index.js";
import {
  addWebhook,
  asPostgres,
  asSqlite,
  at,
  type Backend,
  backends,
  emit,
  emitEntries,
  emitRow,
  NOW,
  outcome,
  postgresBackend,
  record,
  retrying,
  SECOND,
  sqliteBackend,
  T0,
} from "../helpers/stores.js";

const HOUR = 3_600_000;
const LEASE = at(30 * SECOND);
const ids = (rows: ReadonlyArray<{ id: string }>) => rows.map((r) => r.id);
const sorted = (xs: string[]) => [...xs].sort();
const sortedIds = (rows: ReadonlyArray<{ id: string }>) => ids(rows).sort();
/** `n` events for alice. */
const alice = (n: number) => Array.from({ length: n }, () => ({ userId: "alice" }));

/** A fresh store per test; `peer()` opens a second one on the same data. */
function suite(backend: Backend) {
  let store: Store;
  let peer: () => Promise<Store>;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, peer, cleanup } = await backend.open());
  });
  afterEach(async () => {
    await cleanup();
  });
  return { store: () => store, peer: () => peer() };
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(`store conformance: ${backend.name} queue reads every backend has`, () => {
    const s = suite(backend);
    let store: Store;
    beforeEach(() => {
      store = s.store();
    });

    it("lists the webhooks with waiting work due, and counts waiting work by priority", async () => {
      const due = await addWebhook(store, "alice", "https://example.com/due");
      const later = await addWebhook(store, "bob", "https://example.com/later");
      const done = await addWebhook(store, "carol", "https://example.com/done");
      const low = await addWebhook(store, "dave", "https://example.com/low");
      await emit(store, [
        { userId: "alice", priority: "high" },
        { userId: "alice", priority: "low" },
        { userId: "alice", priority: "low" },
      ]);
      const [b] = await emitEntries(store, { userId: "bob" });
      const [c] = await emitEntries(store, { userId: "carol", priority: "high" });
      await emit(store, { userId: "dave", priority: "low" }, { now: at(HOUR) });
      await record(store, [outcome(b!, retrying(at(HOUR))), outcome(c!)]);

      expect(await store.queue.readyWebhooks(at(-1))).toEqual([]);
      expect(await store.queue.readyWebhooks(NOW)).toEqual([due.id]);
      expect(sorted(await store.queue.readyWebhooks(at(HOUR)))).toEqual(sorted([due.id, later.id, low.id]));
      expect(await store.queue.readyWebhooks(at(HOUR))).not.toContain(done.id);
      expect(await store.queue.depth()).toEqual({ high: 1, normal: 1, low: 3 });
    });
  });
}

describe("store conformance: sqlite queue statements", () => {
  const s = suite(sqliteBackend);
  let store: SqliteStore;
  beforeEach(() => {
    store = asSqlite(s.store());
  });
  const live = () => false;

  it("due: one webhook's waiting deliveries at one priority, oldest due first, up to the limit", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    await addWebhook(store, "bob", "https://example.com/b");
    const rows = [1, 2, 3, 4].map(() => emitRow({ userId: "alice", data: { text: "héllo ✓ 😀" } }, NOW));
    const writes = await store.engine.emit(rows, NOW, at(-HOUR));
    const [a1, a2, a3, a4] = writes.map((x) => x.entries[0]!);
    const [high] = await emitEntries(store, { userId: "alice", priority: "high" });
    const [done, retry] = await emitEntries(store, alice(2));
    await emitEntries(store, { userId: "bob" });
    await record(store, [outcome(done!), outcome(retry!, retrying(at(HOUR)))]);
    store.queue.reschedule([a1!.id], at(3 * SECOND));
    store.queue.reschedule([a2!.id], at(1 * SECOND));
    store.queue.reschedule([a3!.id], at(2 * SECOND));

    const due = (now: string, priority: number, limit = 10) => store.queue.due(w.id, now, priority, limit);
    expect(ids(due(at(3 * SECOND), 1))).toEqual(ids([a4!, a2!, a3!, a1!]));
    expect(ids(due(at(3 * SECOND), 1, 2))).toEqual(ids([a4!, a2!]));
    expect(ids(due(at(1500), 1))).toEqual(ids([a4!, a2!]));
    expect(ids(due(at(-1), 1))).toEqual([]);
    expect(ids(due(NOW, 0))).toEqual([high!.id]);
    expect(ids(due(NOW, 2))).toEqual([]);
    expect(due(NOW, 1)).toEqual([
      {
        id: a4!.id,
        webhookId: w.id,
        priority: 1,
        event: "memory.created",
        payload: rows[3]!.body,
        attempts: 0,
      },
    ]);
    const later = due(at(HOUR), 1);
    expect(ids(later)).toEqual(ids([a4!, a2!, a3!, a1!, retry!]));
    expect(later.find((d) => d.id === retry!.id)?.attempts).toBe(1);
    expect(ids(later)).not.toContain(done!.id);
    // What the process holds in flight is left out, and the limit counts only the rest.
    const held = [a4!.id, a3!.id];
    expect(ids(store.queue.due(w.id, at(3 * SECOND), 1, 10, held))).toEqual(ids([a2!, a1!]));
    expect(ids(store.queue.due(w.id, at(3 * SECOND), 1, 1, held))).toEqual(ids([a2!]));
  });

  it("reschedule makes waiting deliveries due at a new time, and never revives a finished one", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const [pending, retry, done] = await emitEntries(store, alice(3));
    await record(store, [outcome(retry!, retrying(at(SECOND))), outcome(done!)]);
    store.queue.reschedule([pending!.id, retry!.id, done!.id], at(HOUR));
    expect(await store.deliveries.get(pending!.id)).toMatchObject({
      status: "pending",
      nextRetryAt: at(HOUR),
    });
    expect(await store.deliveries.get(retry!.id)).toMatchObject({ status: "failed", nextRetryAt: at(HOUR) });
    expect(await store.deliveries.get(done!.id)).toMatchObject({ status: "success", nextRetryAt: null });
    expect(store.queue.readyWebhooks(at(HOUR - 1))).toEqual([]);
    expect(store.queue.readyWebhooks(at(HOUR))).toEqual([w.id]);
    expect(ids(store.queue.due(w.id, at(HOUR), 1, 10))).toEqual(ids([pending!, retry!]));
    store.queue.reschedule([], NOW);
  });

  it("takeLock: taken, renewed, refused while another live owner holds it; taken over once expired or dead", () => {
    const asked: string[] = [];
    const dead = (holder: string) => {
      asked.push(holder);
      return true;
    };
    expect(store.queue.takeLock("a", NOW, at(10 * SECOND), live)).toBe("taken");
    expect(store.queue.takeLock("a", at(SECOND), at(11 * SECOND), live)).toBe("renewed");
    expect(store.queue.takeLock("b", at(5 * SECOND), at(15 * SECOND), live)).toBe("refused");
    expect(store.queue.takeLock("b", at(11 * SECOND - 1), at(20 * SECOND), live)).toBe("refused");
    // Expired: the lock ran out at 11 s.
    expect(store.queue.takeLock("b", at(11 * SECOND), at(20 * SECOND), live)).toBe("taken");
    expect(store.queue.renewLock("a", at(60 * SECOND))).toBe(false);
    expect(store.queue.takeLock("a", at(12 * SECOND), at(22 * SECOND), live)).toBe("refused");
    // Live but its process is gone: taken over, and "taken" (not "renewed") for the old holder.
    expect(store.queue.takeLock("a", at(12 * SECOND), at(22 * SECOND), dead)).toBe("taken");
    expect(asked).toEqual(["b"]);
    expect(store.queue.takeLock("a", at(13 * SECOND), at(23 * SECOND), dead)).toBe("renewed");
    expect(asked).toEqual(["b"]);
  });

  it("renewLock pushes our lock out (never in); releaseLock frees only our own", () => {
    expect(store.queue.renewLock("a", at(10 * SECOND))).toBe(false);
    expect(store.queue.takeLock("a", NOW, at(10 * SECOND), live)).toBe("taken");
    expect(store.queue.renewLock("a", at(30 * SECOND))).toBe(true);
    expect(store.queue.takeLock("b", at(20 * SECOND), at(40 * SECOND), live)).toBe("refused");
    expect(store.queue.renewLock("a", at(5 * SECOND))).toBe(true);
    expect(store.queue.takeLock("b", at(25 * SECOND), at(40 * SECOND), live)).toBe("refused");
    expect(store.queue.renewLock("b", at(60 * SECOND))).toBe(false);
    store.queue.releaseLock("b");
    expect(store.queue.takeLock("b", at(25 * SECOND), at(40 * SECOND), live)).toBe("refused");
    store.queue.releaseLock("a");
    expect(store.queue.renewLock("a", at(60 * SECOND))).toBe(false);
    expect(store.queue.takeLock("b", at(25 * SECOND), at(40 * SECOND), live)).toBe("taken");
  });

  it("with requireEngineLock, records nothing unless the lease owner holds the engine lock", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const [e] = await emitEntries(store, { userId: "alice" });
    const o = outcome(e!);
    const locked = () =>
      record(store, [o], {
        requireEngineLock: true,
        breakers: [{ webhookId: w.id, state: "open", openedAt: NOW }],
        disabled: [{ webhookId: w.id, reason: "gone", at: NOW }],
      });
    const untouched = async () => {
      expect(await store.deliveries.get(e!.id)).toMatchObject({ status: "pending", attempts: 0 });
      expect(await store.deliveries.attempts(e!.id)).toEqual([]);
      expect(await store.webhooks.get(w.id)).toEqual(w);
    };
    expect(await locked()).toEqual([]);
    await untouched();
    expect(store.queue.takeLock("worker-b", NOW, at(10 * SECOND), live)).toBe("taken");
    expect(await locked()).toEqual([]);
    await untouched();
    expect(store.queue.takeLock("worker-a", at(10 * SECOND), at(20 * SECOND), live)).toBe("taken");
    expect(await locked()).toEqual([o]);
    expect(await store.deliveries.get(e!.id)).toMatchObject({ status: "success", attempts: 1 });
    expect(await store.webhooks.get(w.id)).toMatchObject({
      active: false,
      disabledReason: "gone",
      breakerState: "open",
      breakerOpenedAt: NOW,
    });
  });
});

describe.skipIf(postgresBackend.skip)("store conformance: postgres queue statements", () => {
  const s = suite(postgresBackend);
  let store: PostgresStore;
  beforeEach(() => {
    store = asPostgres(s.store());
  });
  const claim = (
    st: PostgresStore,
    owner: string,
    requests: ClaimRequest[],
    now = NOW,
    leaseUntil = LEASE,
  ): Promise<ClaimedDelivery[]> => st.queue.claim(requests, now, leaseUntil, owner);
  const leased = async () =>
    (
      await store.db
        .selectFrom("webhook_deliveries")
        .select(["id", "lease_owner", "lease_until"])
        .where("lease_owner", "is not", null)
        .orderBy("id")
        .execute()
    ).map((r) => [r.id, r.lease_owner, r.lease_until]);

  it("claim never hands out more than `limit` of a webhook across claimers in two processes", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const v = await addWebhook(store, "alice", "https://example.com/b");
    await emit(store, alice(20));
    const other = asPostgres(await s.peer());
    const round = async (now: string, leaseUntil: string) => {
      const requests = [
        { webhookId: w.id, max: 5, limit: 3 },
        { webhookId: v.id, max: 4, limit: 6 },
      ];
      const got = await Promise.all(
        (["a", "b", "c", "d"] as const).map((owner, i) =>
          claim(i % 2 ? other : store, owner, requests, now, leaseUntil),
        ),
      );
      const all = got.flat();
      expect(new Set(ids(all)).size).toBe(all.length);
      return [all.filter((d) => d.webhookId === w.id).length, all.filter((d) => d.webhookId === v.id).length];
    };
    expect(await round(NOW, LEASE)).toEqual([3, 6]);
    expect(await store.queue.depth()).toEqual({ high: 0, normal: 40, low: 0 });
    expect(await round(at(10 * SECOND), at(40 * SECOND))).toEqual([0, 0]);
    // Once the leases run out they no longer count, and what they held is due again.
    expect(await round(LEASE, at(60 * SECOND))).toEqual([3, 6]);
  });

  it("claim: leases hide claimed rows until they run out, and free a slot when the outcome is written", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const entries = await emitEntries(store, alice(4));
    const req = (max: number, limit = 3) => [{ webhookId: w.id, max, limit }];
    const a = await claim(store, "a", req(2));
    expect(ids(a)).toEqual(ids(entries.slice(0, 2)));
    const b = await claim(store, "b", req(5));
    expect(ids(b)).toEqual([entries[2]!.id]);
    expect(await claim(store, "b", req(5))).toEqual([]);
    expect(await leased()).toEqual([
      [entries[0]!.id, "a", LEASE],
      [entries[1]!.id, "a", LEASE],
      [entries[2]!.id, "b", LEASE],
    ]);
    expect(await store.queue.readyWebhooks(at(SECOND))).toEqual([w.id]);

    // b may not write a's outcome; a may, and that frees one slot.
    expect(await record(store, [outcome(a[0]!)], { leaseOwner: "b" }, { claim: false })).toEqual([]);
    expect(await record(store, [outcome(a[0]!)], { leaseOwner: "a" }, { claim: false })).toEqual([
      outcome(a[0]!),
    ]);
    expect(ids(await claim(store, "b", req(5), at(SECOND)))).toEqual([entries[3]!.id]);
    expect(await store.queue.readyWebhooks(at(SECOND))).toEqual([]);
    expect(await store.queue.readyWebhooks(LEASE)).toEqual([w.id]);
    expect(sortedIds(await claim(store, "c", req(5), LEASE, at(HOUR)))).toEqual(
      sortedIds([entries[1]!, entries[2]!, entries[3]!]),
    );
    expect(await claim(store, "c", [{ webhookId: w.id, max: 0, limit: 3 }], at(2 * HOUR))).toEqual([]);
    expect(await claim(store, "c", [{ webhookId: w.id, max: 3, limit: 0 }], at(2 * HOUR))).toEqual([]);
    expect(await claim(store, "c", [], at(2 * HOUR))).toEqual([]);
  });

  it("claim takes the highest priority first, then the oldest due, and hands out the payload byte for byte", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const rows = (["low", "normal", "high", "normal", "normal"] as const).map((priority) =>
      emitRow({ userId: "alice", priority, data: { text: "héllo ✓ 😀", n: 1e21 } }, NOW),
    );
    const entries = (await store.engine.emit(rows, NOW, at(-HOUR))).map((x) => x.entries[0]!);
    const got = await claim(store, "a", [{ webhookId: w.id, max: 3, limit: 10 }]);
    expect(got).toEqual(
      [2, 1, 3].map((i) => ({
        id: entries[i]!.id,
        webhookId: w.id,
        priority: entries[i]!.priority,
        event: "memory.created",
        payload: rows[i]!.body,
        attempts: 0,
      })),
    );
    // Give the two normal ones back out of age order: the one due first is claimed first.
    await store.queue.release([entries[1]!.id], at(3 * SECOND), "a");
    await store.queue.release([entries[3]!.id], at(2 * SECOND), "a");
    const next = await claim(store, "b", [{ webhookId: w.id, max: 2, limit: 10 }], at(5 * SECOND));
    expect(ids(next)).toEqual([entries[3]!.id, entries[4]!.id]);
  });

  it("stampLeases leases the given rows still waiting and due (or leased), hiding them from claims", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const [d1, d2, later, done] = await emitEntries(store, alice(4));
    await record(store, [outcome(later!, retrying(at(HOUR))), outcome(done!)]);
    const all = [d1!.id, d2!.id, later!.id, done!.id, newId("dlv")];
    const stamped = await store.queue.stampLeases(all, NOW, LEASE, "r1");
    expect(sortedIds(stamped)).toEqual(sortedIds([d1!, d2!]));
    expect(stamped.find((d) => d.id === d1!.id)).toMatchObject({ webhookId: w.id, attempts: 0, priority: 1 });
    expect(await leased()).toEqual([
      [d1!.id, "r1", LEASE],
      [d2!.id, "r1", LEASE],
    ]);
    expect(await claim(store, "b", [{ webhookId: w.id, max: 5, limit: 5 }], at(SECOND))).toEqual([]);
    expect(await record(store, [outcome(d1!)], { leaseOwner: "b" }, { claim: false })).toEqual([]);
    expect(await record(store, [outcome(d1!)], { leaseOwner: "r1" }, { claim: false })).toHaveLength(1);
    // Leased (not due) rows are stamped again: Redis decides who holds a lease.
    expect(ids(await store.queue.stampLeases([d2!.id], at(SECOND), at(40 * SECOND), "r2"))).toEqual([d2!.id]);
    expect(await leased()).toEqual([[d2!.id, "r2", at(40 * SECOND)]]);
    expect(ids(await store.queue.stampLeases([later!.id], at(HOUR), at(HOUR + 30 * SECOND), "r2"))).toEqual([
      later!.id,
    ]);
  });

  it("dueTimes gives each still-waiting delivery's due time in epoch ms", async () => {
    await addWebhook(store, "alice", "https://example.com/a");
    const [d1, later, done] = await emitEntries(store, alice(3));
    await record(store, [outcome(later!, retrying(at(HOUR))), outcome(done!)]);
    const times = await store.queue.dueTimes([d1!.id, later!.id, done!.id, newId("dlv")]);
    expect([...times].sort((x, y) => x.due - y.due)).toEqual([
      { id: d1!.id, due: T0 },
      { id: later!.id, due: T0 + HOUR },
    ]);
    expect(await store.queue.dueTimes([])).toEqual([]);
  });

  it("extendLeases pushes out only our own leases", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const [d1, d2] = await emitEntries(store, alice(2));
    await claim(store, "a", [{ webhookId: w.id, max: 2, limit: 2 }]);
    await store.queue.extendLeases([d1!.id, d2!.id], at(60 * SECOND), "b");
    await store.queue.extendLeases([d1!.id], at(60 * SECOND), "a");
    await store.queue.extendLeases([], at(90 * SECOND), "a");
    expect(await leased()).toEqual([
      [d1!.id, "a", at(60 * SECOND)],
      [d2!.id, "a", LEASE],
    ]);
    const times = await store.queue.dueTimes([d1!.id, d2!.id]);
    expect(times.find((t) => t.id === d1!.id)?.due).toBe(T0 + 60 * SECOND);
    // At 45 s only d2's lease has run out: one slot of two is free, and d2 is due again.
    expect(ids(await claim(store, "b", [{ webhookId: w.id, max: 2, limit: 2 }], at(45 * SECOND)))).toEqual([
      d2!.id,
    ]);
  });

  it("release gives our claimed rows back, leaseless and due at the given time", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const [d1, d2] = await emitEntries(store, alice(2));
    await claim(store, "a", [{ webhookId: w.id, max: 2, limit: 5 }]);
    await store.queue.release([d1!.id, d2!.id], at(5 * SECOND), "b");
    expect((await leased()).length).toBe(2);
    await store.queue.release([d1!.id], at(5 * SECOND), "a");
    await store.queue.release([], at(5 * SECOND), "a");
    expect(await leased()).toEqual([[d2!.id, "a", LEASE]]);
    expect(await store.deliveries.get(d1!.id)).toMatchObject({
      status: "pending",
      attempts: 0,
      nextRetryAt: at(5 * SECOND),
    });
    expect(await claim(store, "b", [{ webhookId: w.id, max: 2, limit: 5 }], at(4 * SECOND))).toEqual([]);
    expect(ids(await claim(store, "b", [{ webhookId: w.id, max: 2, limit: 5 }], at(5 * SECOND)))).toEqual([
      d1!.id,
    ]);
  });

  it("waitingPage pages every waiting row by id, with its due time and lease", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const entries = await emitEntries(store, alice(6));
    await record(store, [outcome(entries[5]!), outcome(entries[4]!, retrying(at(HOUR)))]);
    await claim(store, "a", [{ webhookId: w.id, max: 1, limit: 5 }]);
    const seen = [];
    let after = "";
    for (;;) {
      const page = await store.queue.waitingPage(after, 2);
      seen.push(...page);
      if (page.length < 2) break;
      after = page[page.length - 1]!.id;
    }
    const row = (i: number, due: number, lease: string | null) => ({
      id: entries[i]!.id,
      webhook_id: w.id,
      priority: 1,
      due,
      lease_owner: lease,
      lease_until: lease ? T0 + 30 * SECOND : null,
    });
    expect(seen).toEqual([
      row(0, T0 + 30 * SECOND, "a"),
      row(1, T0, null),
      row(2, T0, null),
      row(3, T0, null),
      row(4, T0 + HOUR, null),
    ]);
  });

  it("dueWindowPage pages the waiting rows due in (from, upTo] by due time, then id", async () => {
    await addWebhook(store, "alice", "https://example.com/a");
    const byTime: string[][] = [];
    for (const [s, n] of [
      [1, 1],
      [2, 2],
      [3, 1],
      [4, 1],
      [5, 1],
    ] as const) {
      const entries = await emitEntries(store, alice(n), { now: at(s * SECOND) });
      byTime.push(ids(entries).sort());
    }
    const seen = [];
    let after = { due: at(SECOND), id: "" };
    for (;;) {
      const page = await store.queue.dueWindowPage(at(SECOND), at(4 * SECOND), after, 3);
      seen.push(...page);
      if (page.length < 3) break;
      const last = page[page.length - 1]!;
      after = { due: new Date(last.due).toISOString(), id: last.id };
    }
    expect(seen.map((r) => [r.id, r.due])).toEqual([
      [byTime[1]![0], T0 + 2 * SECOND],
      [byTime[1]![1], T0 + 2 * SECOND],
      [byTime[2]![0], T0 + 3 * SECOND],
      [byTime[3]![0], T0 + 4 * SECOND],
    ]);
  });

  it("existingWebhooks answers which of the ids are still webhooks", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const v = await addWebhook(store, "bob", "https://example.com/b");
    const missing = newId("whk");
    expect((await store.queue.existingWebhooks([w.id, v.id, missing])).sort()).toEqual([w.id, v.id].sort());
    await store.webhooks.delete(v.id);
    expect(await store.queue.existingWebhooks([w.id, v.id, missing])).toEqual([w.id]);
    expect(await store.queue.existingWebhooks([])).toEqual([]);
  });

  it("emit wakes the listeners of wakeChannel with the webhooks that got work", async () => {
    const w = await addWebhook(store, "alice", "https://example.com/a");
    const v = await addWebhook(store, "alice", "https://example.com/b");
    const client = await store.pool.connect();
    const woken: string[] = [];
    try {
      client.on("notification", (n) => {
        if (n.channel === store.queue.wakeChannel) woken.push(...(n.payload ?? "").split(","));
      });
      await client.query(`LISTEN ${store.queue.wakeChannel}`);
      await emit(store, { userId: "alice" });
      for (let i = 0; i < 50 && !(woken.includes(w.id) && woken.includes(v.id)); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(woken).toEqual(expect.arrayContaining([w.id, v.id]));
      await client.query(`UNLISTEN ${store.queue.wakeChannel}`);
    } finally {
      client.release();
    }
  });
});
