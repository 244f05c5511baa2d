/**
 * The deliveries table as the queue (embedded mode). A claim moves `next_retry_at` to the end of
 * the lease: the row is simply not due while someone holds it, and is due again by itself if
 * that someone dies. No separate sweeper is needed for leases, and the claim query needs no
 * extra condition.
 */
import type SQLite from "better-sqlite3";
import { PRIORITY_NAMES, type Priority } from "../store/schema.js";
import { type ClaimedDelivery, type DeliveryQueue, type QueueEntry, WakeSignal } from "./queue.js";

const iso = (ms: number) => new Date(ms).toISOString();
const WAITING = "status IN ('pending', 'failed') AND next_retry_at IS NOT NULL";

export function createSqliteQueue(sqlite: SQLite.Database, owner: string): DeliveryQueue {
  const wake = new WakeSignal();
  const st = {
    claim: sqlite.prepare<[string, string, string, string, string, number, number], ClaimRow>(
      `UPDATE webhook_deliveries SET next_retry_at = ?, lease_until = ?, lease_owner = ?
       WHERE id IN (SELECT id FROM webhook_deliveries
                    WHERE webhook_id = ? AND ${WAITING} AND next_retry_at <= ? AND priority = ?
                    ORDER BY next_retry_at LIMIT ?)
       RETURNING id, webhook_id, priority, event, payload, attempts`,
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
    extend: sqlite.prepare<[string, string, string, string]>(
      `UPDATE webhook_deliveries SET next_retry_at = ?, lease_until = ?
       WHERE id = ? AND lease_owner = ? AND ${WAITING}`,
    ),
    release: sqlite.prepare<[string, string, string]>(
      `UPDATE webhook_deliveries SET next_retry_at = ?, lease_until = NULL, lease_owner = NULL
       WHERE id = ? AND lease_owner = ? AND ${WAITING}`,
    ),
    depth: sqlite.prepare<[], { priority: number; n: number }>(
      `SELECT priority, count(*) AS n FROM webhook_deliveries WHERE ${WAITING} GROUP BY priority`,
    ),
  };

  const claimTx = sqlite.transaction((webhookId: string, max: number, now: string, lease: string) => {
    const out: ClaimedDelivery[] = [];
    for (let p = 0; p < PRIORITY_NAMES.length && out.length < max; p++) {
      for (const r of st.claim.all(lease, lease, owner, webhookId, now, p, max - out.length)) {
        out.push({
          id: r.id,
          webhookId: r.webhook_id,
          priority: r.priority,
          event: r.event,
          payload: r.payload,
          attempts: r.attempts,
        });
      }
    }
    return out;
  });
  const extendTx = sqlite.transaction((ids: readonly string[], lease: string) => {
    for (const id of ids) st.extend.run(lease, lease, id, owner);
  });
  const releaseTx = sqlite.transaction((entries: readonly QueueEntry[], due: string) => {
    for (const e of entries) st.release.run(due, e.id, owner);
  });

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
    async claim(webhookId, max, now, leaseUntil) {
      if (max <= 0) return [];
      return claimTx(webhookId, max, iso(now), iso(leaseUntil));
    },
    async extend(ids, leaseUntil) {
      if (ids.length > 0) extendTx(ids, iso(leaseUntil));
    },
    async release(entries, dueAt) {
      if (entries.length === 0) return;
      releaseTx(entries, iso(dueAt));
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async settle() {
      // The outcome's own transaction already set status and next_retry_at: nothing to do.
    },
    async depth() {
      const out: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
      for (const r of st.depth.all()) {
        const name = PRIORITY_NAMES[r.priority];
        if (name) out[name] += r.n;
      }
      return out;
    },
    onWake: (listener) => wake.on(listener),
    async close() {},
  };
}

interface ClaimRow {
  id: string;
  webhook_id: string;
  priority: number;
  event: string;
  payload: string;
  attempts: number;
}
