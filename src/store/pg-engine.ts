/**
 * The engine's writes on PostgreSQL: raw SQL over the pool, each operation one transaction.
 * Wake-ups are sent with pg_notify inside the emit transaction, so they go out exactly when the
 * rows become visible (at commit), never before.
 */
import type pg from "pg";
import { canonicalJson } from "../signer.js";
import type { EmitRow, EmitWrite, EngineStore, OutcomeBatch, WebhookDispatchRow } from "./engine-store.js";
import { subscribed, summarizeCounters } from "./sqlite-engine.js";

export const WAKE_CHANNEL = "continuum_webhooks_wake";

export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const out = await fn(client);
    await client.query("COMMIT");
    return out;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

export function createPgEngineStore(pool: pg.Pool): EngineStore {
  return {
    emit(rows: EmitRow[], now: string, idemCutoff: string) {
      return inTransaction(pool, async (c) => {
        const writes: EmitWrite[] = [];
        const subscribers = new Map<string, Array<{ id: string; events: string }>>();
        const woken = new Set<string>();
        for (const row of rows) {
          let subs = subscribers.get(row.userId);
          if (!subs) {
            subs = (
              await c.query<{ id: string; events: string }>(
                "SELECT id, events FROM webhooks WHERE user_id = $1 AND active",
                [row.userId],
              )
            ).rows;
            subscribers.set(row.userId, subs);
          }
          const targets = subs.filter((w) => subscribed(w.events, row.event)).map((w) => w.id);
          if (row.idempotencyKey !== null) {
            await c.query(
              `UPDATE webhook_events SET idempotency_key = NULL
               WHERE user_id = $1 AND idempotency_key = $2 AND created_at <= $3`,
              [row.userId, row.idempotencyKey, idemCutoff],
            );
          }
          const inserted = await c.query(
            `INSERT INTO webhook_events (id, user_id, event, payload, priority, idempotency_key, delivery_count, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id`,
            [
              row.eventId,
              row.userId,
              row.event,
              row.body,
              row.priorityName,
              row.idempotencyKey,
              targets.length,
              now,
            ],
          );
          if (inserted.rowCount === 0) {
            const prior = await c.query<{ id: string; delivery_count: number }>(
              "SELECT id, delivery_count FROM webhook_events WHERE user_id = $1 AND idempotency_key = $2",
              [row.userId, row.idempotencyKey],
            );
            const p = prior.rows[0]!;
            writes.push({ id: p.id, deliveries: p.delivery_count, duplicate: true, entries: [] });
            continue;
          }
          const ids = targets.map(() => row.newDeliveryId());
          if (ids.length > 0) {
            await c.query(
              `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, status, priority, attempts,
                 next_retry_at, duration_ms, created_at)
               SELECT d.id, d.webhook_id, $3, $4, $5, 'pending', $6, 0, $7, 0, $7
               FROM unnest($1::text[], $2::text[]) AS d(id, webhook_id)`,
              [ids, targets, row.eventId, row.event, row.body, row.priority, now],
            );
            for (const t of targets) woken.add(t);
          }
          writes.push({
            id: row.eventId,
            deliveries: ids.length,
            duplicate: false,
            entries: ids.map((id, i) => ({ id, webhookId: targets[i]!, priority: row.priority })),
          });
        }
        if (woken.size > 0) await notify(c, [...woken]);
        return writes;
      });
    },

    recordOutcomes(batch: OutcomeBatch) {
      return inTransaction(pool, async (c) => {
        const applied = [];
        for (const o of batch.outcomes) {
          const res = await c.query(
            `UPDATE webhook_deliveries SET status = $1, attempts = $2, next_retry_at = $3, response_code = $4,
               response_body = $5, duration_ms = $6, completed_at = $7, error_message = $8,
               lease_owner = NULL, lease_until = NULL
             WHERE id = $9 AND (lease_owner IS NULL OR lease_owner = $10)`,
            [
              o.status,
              o.attempt,
              o.nextRetryAt,
              o.responseCode,
              o.responseBody,
              o.durationMs,
              o.completedAt,
              o.errorMessage,
              o.deliveryId,
              batch.leaseOwner,
            ],
          );
          if (res.rowCount === 0 || !o.attempted) continue;
          await c.query(
            `INSERT INTO webhook_delivery_attempts (delivery_id, attempt, webhook_id, attempted_at, response_code,
               duration_ms, error_type, error_message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING`,
            [
              o.deliveryId,
              o.attempt,
              o.webhookId,
              o.attemptedAt,
              o.responseCode,
              o.durationMs,
              o.errorType,
              o.errorMessage,
            ],
          );
          applied.push(o);
        }
        for (const [webhookId, k] of summarizeCounters(applied)) {
          await c.query(
            `UPDATE webhooks SET
               failure_count = CASE WHEN $2::boolean THEN $1 ELSE failure_count + $1 END,
               last_triggered_at = GREATEST(last_triggered_at, $3::timestamptz),
               last_success_at = COALESCE($4::timestamptz, last_success_at),
               last_failure_at = COALESCE($5::timestamptz, last_failure_at)
             WHERE id = $6`,
            [k.failures, k.lastSuccessAt !== null, k.lastAt, k.lastSuccessAt, k.lastFailureAt, webhookId],
          );
        }
        for (const b of batch.breakers) {
          await c.query("UPDATE webhooks SET breaker_state = $1, breaker_opened_at = $2 WHERE id = $3", [
            b.state,
            b.openedAt,
            b.webhookId,
          ]);
        }
        for (const d of batch.disabled) {
          await c.query(
            "UPDATE webhooks SET active = false, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND active",
            [d.reason, d.at, d.webhookId],
          );
        }
        return applied;
      });
    },

    async webhookForDispatch(id: string) {
      const res = await pool.query<WebhookDispatchRow>(
        `SELECT id, user_id, url, secret, previous_secret, previous_secret_expires_at, active, retry_schedule,
           breaker_state, breaker_opened_at, failure_count FROM webhooks WHERE id = $1`,
        [id],
      );
      return res.rows[0] ?? null;
    },
  };
}

/** Wake-ups carry webhook ids; a NOTIFY payload is limited to 8000 bytes, so split long lists. */
export async function notify(c: pg.ClientBase, webhookIds: string[]): Promise<void> {
  for (let i = 0; i < webhookIds.length; i += 200) {
    await c.query("SELECT pg_notify($1, $2)", [WAKE_CHANNEL, webhookIds.slice(i, i + 200).join(",")]);
  }
}

/** PostgreSQL returns JSONB re-formatted: canonicalize again to get the exact body to send. */
export function canonicalBody(payloadText: string): string {
  return canonicalJson(JSON.parse(payloadText));
}
