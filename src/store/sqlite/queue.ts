/**
 * The embedded queue's statements: due deliveries per webhook and priority (each an exact range
 * of idx_deliveries_next_retry), releases, depth, and the engine lock that makes this process
 * the file's only claimer (src/queue/sql-queue.ts explains why).
 */
import type SQLite from "better-sqlite3";
import {
  BodyCache,
  type ClaimRow,
  DELIVERY_FROM,
  DELIVERY_PAYLOAD,
  depthByPriority,
  toClaimed,
  WAITING,
} from "../common.js";
import type { SqliteQueueStatements } from "../types.js";

export function sqliteQueueStatements(sqlite: SQLite.Database): SqliteQueueStatements {
  const bodies = new BodyCache((stored) => stored); // SQLite keeps the canonical bytes as they are
  const st = {
    // What this process holds in flight is still due in the table (the lease lives in memory):
    // it is left out here, so its payload is not read again on every claim.
    due: sqlite.prepare<[string, string, number, string, number], ClaimRow>(
      `SELECT d.id, d.webhook_id, d.priority, d.event, d.event_id, ${DELIVERY_PAYLOAD} AS payload, d.attempts
       FROM ${DELIVERY_FROM}
       WHERE d.webhook_id = ? AND d.${WAITING} AND d.next_retry_at <= ? AND d.priority = ?
         AND d.id NOT IN (SELECT value FROM json_each(?))
       ORDER BY d.next_retry_at LIMIT ?`,
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
    releaseLock: sqlite.prepare<[string]>("DELETE FROM engine_lock WHERE owner = ?"),
  };

  const takeLockTx = sqlite.transaction(
    (owner: string, now: string, until: string, isDead: (holder: string) => boolean) => {
      const current = st.lock.get();
      const mine = current?.owner === owner;
      if (current && !mine && current.expires_at > now && !isDead(current.owner)) return "refused" as const;
      st.takeLock.run(owner, until);
      return mine ? ("renewed" as const) : ("taken" as const);
    },
  );
  const rescheduleTx = sqlite.transaction((ids: readonly string[], dueAt: string) => {
    for (const id of ids) st.reschedule.run(dueAt, id);
  });

  return {
    due: (webhookId, now, priority, limit, held = []) =>
      st.due.all(webhookId, now, priority, JSON.stringify(held), limit).map((r) => toClaimed(r, bodies)),
    readyWebhooks: (now) => st.ready.all(now, now, now).map((r) => r.id),
    reschedule: (ids, dueAt) => rescheduleTx(ids, dueAt),
    depth: () => depthByPriority(st.depth.all()),
    takeLock: (owner, now, until, isDead) => takeLockTx(owner, now, until, isDead),
    renewLock: (owner, until) => st.renewLock.run(until, owner).changes > 0,
    releaseLock(owner) {
      st.releaseLock.run(owner);
    },
  };
}
