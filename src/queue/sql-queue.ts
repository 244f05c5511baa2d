/**
 * The deliveries table as the queue (embedded mode, SQLite).
 *
 * One process at a time delivers from a SQLite file: it holds the row of `engine_lock`, renewed
 * on every claim and sweep. That makes claiming a plain read — the holder remembers in memory
 * what it has in flight — instead of a write per delivery, which was the largest single cost
 * of this mode. If the holder dies, its lock runs out (at once, when the dead process is seen to
 * be gone on this host) and whoever takes over finds every unfinished delivery still due:
 * at-least-once, with nothing to clean up. A second process on the same file waits as a standby.
 */
import type SQLite from "better-sqlite3";
import { PRIORITY_NAMES } from "../store/schema.js";
import {
  type ClaimedDelivery,
  type ClaimRow,
  claimedFromRow,
  type DeliveryQueue,
  depthByPriority,
  type QueueEntry,
  WAITING,
  WakeSignal,
} from "./queue.js";

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

export function createSqliteQueue(sqlite: SQLite.Database, owner: string): DeliveryQueue {
  const wake = new WakeSignal();
  const host = owner.split(":")[0] ?? "";
  /** Deliveries this process has claimed and not yet settled, by webhook. */
  const held = new Map<string, Set<string>>();
  let holding = false;

  const st = {
    claim: sqlite.prepare<[string, string, number, number], ClaimRow>(
      `SELECT id, webhook_id, priority, event, payload, attempts FROM webhook_deliveries
       WHERE webhook_id = ? AND ${WAITING} AND next_retry_at <= ? AND priority = ?
       ORDER BY next_retry_at LIMIT ?`,
    ),
    ready: sqlite.prepare<[string, string, string], { id: string }>(
      `SELECT w.id FROM webhooks w WHERE
         EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.priority = 0
                 AND d.${WAITING} AND d.next_retry_at <= ?)
      OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.priority = 1
                 AND d.${WAITING} AND d.next_retry_at <= ?)
      OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.priority = 2
                 AND d.${WAITING} AND d.next_retry_at <= ?)`,
    ),
    reschedule: sqlite.prepare<[string, string]>(
      `UPDATE webhook_deliveries SET next_retry_at = ? WHERE id = ? AND ${WAITING}`,
    ),
    depth: sqlite.prepare<[], { priority: number; n: number }>(
      `SELECT priority, count(*) AS n FROM webhook_deliveries WHERE ${WAITING} GROUP BY priority`,
    ),
    lock: sqlite.prepare<[], { owner: string; expires_at: string }>(
      "SELECT owner, expires_at FROM engine_lock WHERE id = 1",
    ),
    renewLock: sqlite.prepare<[string, string]>(
      "UPDATE engine_lock SET expires_at = max(expires_at, ?) WHERE id = 1 AND owner = ?",
    ),
    takeLock: sqlite.prepare<[string, string]>(
      `INSERT INTO engine_lock (id, owner, expires_at) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
    ),
  };

  /** Takes or renews the lock until `until`; false while another live process holds it. */
  const lockTx = sqlite.transaction((now: string, until: string): boolean => {
    const current = st.lock.get();
    const mine = current?.owner === owner;
    if (current && !mine && current.expires_at > now && !ownerIsDead(current.owner, host)) return false;
    st.takeLock.run(owner, until);
    if (!mine) held.clear(); // anything remembered from an earlier tenure is void
    return true;
  });

  let lockedUntil = 0;
  let lockedSince = 0;
  /** Renewed only once half the lease has gone by: a write per claim would cost what it saves. */
  const acquire = (now: number, until: number): boolean => {
    if (holding && now < lockedUntil && now - lockedSince < (until - now) / 2) return true;
    holding = lockTx(iso(now), iso(until));
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
    async readyWebhooks(now) {
      const t = iso(now);
      return st.ready.all(t, t, t).map((r) => r.id);
    },
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
        // Deliveries already in flight are still due in the table: ask for that many more.
        for (let p = 0; p < PRIORITY_NAMES.length && got < max; p++) {
          for (const r of st.claim.all(webhookId, t, p, max - got + (mine?.size ?? 0))) {
            if (got >= max || mine?.has(r.id)) continue;
            if (!mine) {
              mine = new Set();
              held.set(webhookId, mine);
            }
            mine.add(r.id);
            got++;
            out.push(claimedFromRow(r));
          }
        }
      }
      return out;
    },
    async extend(_ids, leaseUntil) {
      // The lock is the lease here: keep it ours for longer (never taking it from anyone).
      if (holding && st.renewLock.run(iso(leaseUntil), owner).changes > 0) lockedUntil = leaseUntil;
    },
    async release(entries, dueAt) {
      if (entries.length === 0) return;
      forget(entries);
      const due = iso(dueAt);
      sqlite.transaction(() => {
        for (const e of entries) st.reschedule.run(due, e.id);
      })();
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async settle(entries) {
      forget(entries.map((e) => e.entry));
    },
    depth: async () => depthByPriority(st.depth.all()),
    onWake: (listener) => wake.on(listener),
    async close() {
      // Hand the file over at once rather than when the lock runs out.
      if (holding) sqlite.prepare("DELETE FROM engine_lock WHERE owner = ?").run(owner);
      held.clear();
    },
  };
}
