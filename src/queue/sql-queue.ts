/**
 * The deliveries table as the queue (embedded mode, SQLite).
 *
 * One process at a time delivers from a SQLite file: it holds the row of `engine_lock`, renewed
 * on every claim and sweep. That makes claiming a plain read — the holder remembers in memory
 * what it has in flight — instead of a write per delivery, which was the largest single cost
 * of this mode. If the holder dies, its lock runs out (at once, when the dead process is seen to
 * be gone on this host) and whoever takes over finds every unfinished delivery still due:
 * at-least-once, with nothing to clean up. A second process on the same file waits as a standby.
 * The SQL is the store's (store/sqlite/queue.ts); what is held in memory is this file's.
 */
import { PRIORITY_NAMES } from "../models.js";
import type { SqliteStore } from "../store/types.js";
import { type ClaimedDelivery, type DeliveryQueue, type QueueEntry, WakeSignal } from "./queue.js";

const iso = (ms: number) => new Date(ms).toISOString();

/** True when `owner` names a process on this host that no longer exists. */
function ownerIsDead(owner: string, host: string): boolean {
  const [h, pid] = owner.split(":");
  if (h !== host || !pid || !/^\d+$/.test(pid) || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

export function createSqliteQueue(store: SqliteStore, owner: string): DeliveryQueue {
  const wake = new WakeSignal();
  const host = owner.split(":")[0] ?? "";
  const sql = store.queue;
  /** Deliveries this process has claimed and not yet settled, by webhook. */
  const held = new Map<string, Set<string>>();
  let holding = false;
  let lockedUntil = 0;
  let lockedSince = 0;

  /** Renewed only once half the lease has gone by: a write per claim would cost what it saves. */
  const acquire = (now: number, until: number): boolean => {
    if (holding && now < lockedUntil && now - lockedSince < (until - now) / 2) return true;
    const got = sql.takeLock(owner, iso(now), iso(until), (holder) => ownerIsDead(holder, host));
    if (got === "taken") held.clear(); // anything remembered from an earlier tenure is void
    holding = got !== "refused";
    if (holding) {
      lockedUntil = until;
      lockedSince = now;
    }
    return holding;
  };

  const forget = (entries: readonly QueueEntry[]) => {
    for (const e of entries) {
      const set = held.get(e.webhookId);
      if (!set) continue;
      set.delete(e.id);
      if (set.size === 0) held.delete(e.webhookId);
    }
  };

  return {
    kind: "sqlite",
    async enqueue(entries) {
      if (entries.length === 0) return;
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    readyWebhooks: async (now) => sql.readyWebhooks(iso(now)),
    async claim(requests, now, leaseUntil) {
      const wanted = requests.filter((r) => r.max > 0);
      if (wanted.length === 0 || !acquire(now, leaseUntil)) return [];
      const t = iso(now);
      const out: ClaimedDelivery[] = [];
      for (const request of wanted) {
        const { webhookId } = request;
        let mine = held.get(webhookId);
        // This process is the only claimer of the file: what it holds is all that is in flight.
        const max = Math.min(request.max, request.limit - (mine?.size ?? 0));
        let got = 0;
        // One query per priority: each an exact index range, however many retries wait later.
        // Deliveries already in flight are still due in the table: the query leaves them out.
        const inFlight = mine ? [...mine] : [];
        for (let p = 0; p < PRIORITY_NAMES.length && got < max; p++) {
          for (const d of sql.due(webhookId, t, p, max - got, inFlight)) {
            if (!mine) {
              mine = new Set();
              held.set(webhookId, mine);
            }
            mine.add(d.id);
            got++;
            out.push(d);
          }
        }
      }
      return out;
    },
    async extend(_ids, leaseUntil) {
      // The lock is the lease here: keep it ours for longer (never taking it from anyone).
      if (holding && sql.renewLock(owner, iso(leaseUntil))) lockedUntil = leaseUntil;
    },
    async release(entries, dueAt) {
      if (entries.length === 0) return;
      forget(entries);
      sql.reschedule(
        entries.map((e) => e.id),
        iso(dueAt),
      );
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async settle(entries) {
      forget(entries.map((e) => e.entry));
    },
    depth: async () => sql.depth(),
    onWake: (listener) => wake.on(listener),
    async close() {
      // Hand the file over at once rather than when the lock runs out.
      if (holding) sql.releaseLock(owner);
      held.clear();
    },
  };
}
