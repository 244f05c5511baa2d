/**
 * Every statement on delivery history in PostgreSQL: reads for the API, the manual retry, the
 * test send's row, per-webhook statistics and the retention purge. The engine's hot writes are
 * in engine.ts, the queues' in queue.ts.
 */
import type pg from "pg";
import type { DeliveryStatus } from "../../models.js";
import {
  ATTEMPT_COLUMNS,
  type AttemptRow,
  DELIVERY_COLUMNS,
  DELIVERY_FROM,
  DELIVERY_PAYLOAD,
  type DeliveryRow,
  emptyStatusCounts,
  PURGEABLE_EVENTS,
  toAttempt,
  toDelivery,
} from "../common.js";
import type { DeliveryStatements } from "../types.js";
import { canonicalBody } from "./body.js";

const SELECT = `SELECT ${DELIVERY_COLUMNS.replace(`${DELIVERY_PAYLOAD} AS`, `${DELIVERY_PAYLOAD}::text AS`)} FROM ${DELIVERY_FROM}`;
const EPOCH = "1970-01-01T00:00:00.000Z";

export function pgDeliveries(pool: pg.Pool): DeliveryStatements {
  return {
    async get(id, webhookId) {
      const res = await pool.query<DeliveryRow>(
        `${SELECT} WHERE d.id = $1 AND ($2::text IS NULL OR d.webhook_id = $2)`,
        [id, webhookId ?? null],
      );
      return res.rows[0] ? toDelivery(res.rows[0], canonicalBody) : null;
    },
    async list(webhookId, filter, page) {
      const res = await pool.query<DeliveryRow>(
        `${SELECT} WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2) AND ($3::text IS NULL OR d.event = $3)
           AND ($4::timestamptz IS NULL OR d.created_at >= $4) AND ($5::timestamptz IS NULL OR d.created_at < $5)
           AND ($6::text IS NULL OR d.id < $6)
         ORDER BY d.id DESC LIMIT $7`,
        [
          webhookId,
          filter.status ?? null,
          filter.event ?? null,
          filter.since ?? null,
          filter.until ?? null,
          page.before ?? null,
          page.limit,
        ],
      );
      return res.rows.map((r) => toDelivery(r, canonicalBody));
    },
    async attempts(deliveryId) {
      const res = await pool.query<AttemptRow>(
        `SELECT ${ATTEMPT_COLUMNS} FROM webhook_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`,
        [deliveryId],
      );
      return res.rows.map(toAttempt);
    },
    async requeue(id, now) {
      const res = await pool.query(
        `UPDATE webhook_deliveries SET status = 'pending', next_retry_at = $1, completed_at = NULL, lease_owner = NULL,
           lease_until = NULL WHERE id = $2 AND status != 'pending'`,
        [now, id],
      );
      return (res.rowCount ?? 0) > 0;
    },
    async resumeParked(webhookId, now) {
      const res = await pool.query<{ id: string; webhook_id: string; priority: number }>(
        `UPDATE webhook_deliveries SET next_retry_at = $1, error_message = NULL
         WHERE webhook_id = $2 AND status = 'pending' AND next_retry_at IS NULL AND lease_owner IS NULL
         RETURNING id, webhook_id, priority`,
        [now, webhookId],
      );
      return res.rows.map((r) => ({ id: r.id, webhookId: r.webhook_id, priority: r.priority }));
    },
    async insertUnqueued(d) {
      await pool.query(
        `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, status, priority, created_at, lease_owner)
         VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', 0, $6, $7)`,
        [d.id, d.webhookId, d.eventId, d.event, d.body, d.createdAt, d.leaseOwner],
      );
    },
    async countByStatus(webhookId, since) {
      const res = await pool.query<{ status: DeliveryStatus; n: number }>(
        `SELECT status, count(*)::int AS n FROM webhook_deliveries WHERE webhook_id = $1 AND created_at >= $2
         GROUP BY status`,
        [webhookId, since ?? EPOCH],
      );
      const out = emptyStatusCounts();
      for (const r of res.rows) out[r.status] = r.n;
      return out;
    },
    async durations(webhookId, since) {
      const res = await pool.query<{ n: number; avg: number | null; p50: number | null; p95: number | null }>(
        // The same rank as SQLite's ORDER BY … OFFSET floor(p·n): both backends answer alike.
        `WITH a AS (SELECT count(*)::int AS n, avg(duration_ms)::float8 AS avg,
                           array_agg(duration_ms ORDER BY duration_ms) AS d
                    FROM webhook_delivery_attempts WHERE webhook_id = $1 AND attempted_at >= $2)
         SELECT n, avg, d[LEAST(n, floor(0.5 * n)::int + 1)] AS p50, d[LEAST(n, floor(0.95 * n)::int + 1)] AS p95
         FROM a`,
        [webhookId, since ?? EPOCH],
      );
      return res.rows[0]!;
    },
    async purgeBefore(cutoff, limit) {
      const d = await pool.query(
        `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE created_at < $1
           AND (status IN ('success', 'dead_letter') OR (status = 'failed' AND next_retry_at IS NULL)) LIMIT $2)`,
        [cutoff, limit],
      );
      const e = await pool.query(
        `DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE created_at < $1
           AND ${PURGEABLE_EVENTS} LIMIT $2)`,
        [cutoff, limit],
      );
      return { deliveries: d.rowCount ?? 0, events: e.rowCount ?? 0 };
    },
  };
}
