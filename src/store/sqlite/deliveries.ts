/**
 * Every statement on delivery history in SQLite: reads for the API, the manual retry, the test
 * send's row, per-webhook statistics and the retention purge. The engine's hot writes are in
 * engine.ts, the queue's in queue.ts.
 */
import type SQLite from "better-sqlite3";
import type { DeliveryStatus } from "../../models.js";
import {
  ATTEMPT_COLUMNS,
  type AttemptRow,
  DELIVERY_COLUMNS,
  DELIVERY_FROM,
  type DeliveryRow,
  emptyStatusCounts,
  PURGEABLE_EVENTS,
  toAttempt,
  toDelivery,
} from "../common.js";
import type { DeliveryStatements } from "../types.js";

const same = (p: string) => p;

export function sqliteDeliveries(db: SQLite.Database): DeliveryStatements {
  const st = {
    get: db.prepare<[string], DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM ${DELIVERY_FROM} WHERE d.id = ?`),
    attempts: db.prepare<[string], AttemptRow>(
      `SELECT ${ATTEMPT_COLUMNS} FROM webhook_delivery_attempts WHERE delivery_id = ? ORDER BY attempt`,
    ),
    requeue: db.prepare<[string, string]>(
      `UPDATE webhook_deliveries SET status = 'pending', next_retry_at = ?, completed_at = NULL, lease_owner = NULL,
         lease_until = NULL WHERE id = ? AND status != 'pending'`,
    ),
    resumeParked: db.prepare<[string, string], { id: string; webhook_id: string; priority: number }>(
      `UPDATE webhook_deliveries SET next_retry_at = ?, error_message = NULL
       WHERE webhook_id = ? AND status = 'pending' AND next_retry_at IS NULL AND lease_owner IS NULL
       RETURNING id, webhook_id, priority`,
    ),
    insertUnqueued: db.prepare(
      `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, status, priority, created_at, lease_owner)
       VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
    ),
    counts: db.prepare<[string, string], { status: DeliveryStatus; n: number }>(
      `SELECT status, count(*) AS n FROM webhook_deliveries WHERE webhook_id = ? AND created_at >= ? GROUP BY status`,
    ),
    durationAgg: db.prepare<[string, string], { n: number; avg: number | null }>(
      `SELECT count(*) AS n, avg(duration_ms) AS avg FROM webhook_delivery_attempts
       WHERE webhook_id = ? AND attempted_at >= ?`,
    ),
    durationAt: db.prepare<[string, string, number], { d: number }>(
      `SELECT duration_ms AS d FROM webhook_delivery_attempts WHERE webhook_id = ? AND attempted_at >= ?
       ORDER BY duration_ms LIMIT 1 OFFSET ?`,
    ),
    purgeDeliveries: db.prepare<[string, number]>(
      `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE created_at < ?
         AND (status IN ('success', 'dead_letter') OR (status = 'failed' AND next_retry_at IS NULL)) LIMIT ?)`,
    ),
    purgeEvents: db.prepare<[string, number]>(
      `DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE created_at < ?
         AND ${PURGEABLE_EVENTS} LIMIT ?)`,
    ),
  };

  return {
    async get(id, webhookId) {
      const row = st.get.get(id);
      return row && (webhookId === undefined || row.webhook_id === webhookId) ? toDelivery(row, same) : null;
    },
    async list(webhookId, filter, page) {
      const where = ["d.webhook_id = ?"];
      const params: unknown[] = [webhookId];
      const add = (condition: string, value: string | undefined) => {
        if (!value) return;
        where.push(condition);
        params.push(value);
      };
      add("d.status = ?", filter.status);
      add("d.event = ?", filter.event);
      add("d.created_at >= ?", filter.since);
      add("d.created_at < ?", filter.until);
      add("d.id < ?", page.before);
      const rows = db
        .prepare<unknown[], DeliveryRow>(
          `SELECT ${DELIVERY_COLUMNS} FROM ${DELIVERY_FROM} WHERE ${where.join(" AND ")} ORDER BY d.id DESC LIMIT ?`,
        )
        .all(...params, page.limit);
      return rows.map((r) => toDelivery(r, same));
    },
    attempts: async (deliveryId) => st.attempts.all(deliveryId).map(toAttempt),
    requeue: async (id, now) => st.requeue.run(now, id).changes > 0,
    resumeParked: async (webhookId, now) =>
      st.resumeParked
        .all(now, webhookId)
        .map((r) => ({ id: r.id, webhookId: r.webhook_id, priority: r.priority })),
    async insertUnqueued(d) {
      st.insertUnqueued.run(d.id, d.webhookId, d.eventId, d.event, d.body, d.createdAt, d.leaseOwner);
    },
    async countByStatus(webhookId, since) {
      const out = emptyStatusCounts();
      for (const r of st.counts.all(webhookId, since ?? "")) out[r.status] = r.n;
      return out;
    },
    async durations(webhookId, since) {
      const from = since ?? "";
      const agg = st.durationAgg.get(webhookId, from)!;
      const at = (p: number) =>
        agg.n === 0
          ? null
          : (st.durationAt.get(webhookId, from, Math.min(agg.n - 1, Math.floor(p * agg.n)))?.d ?? null);
      return { n: agg.n, avg: agg.avg, p50: at(0.5), p95: at(0.95) };
    },
    async purgeBefore(cutoff, limit) {
      return {
        deliveries: st.purgeDeliveries.run(cutoff, limit).changes,
        events: st.purgeEvents.run(cutoff, limit).changes,
      };
    },
  };
}
