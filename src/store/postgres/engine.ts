/**
 * The engine's writes on PostgreSQL: raw SQL over the pool, each operation one transaction.
 * Wake-ups are sent with pg_notify inside the emit transaction, so they go out exactly when the
 * rows become visible (at commit), never before.
 */
import type pg from "pg";
import {
  fencedChanges,
  isParked,
  subscribed,
  summarizeCounters,
  toWebhook,
  unparkWhereEnabled,
  WEBHOOK_COLUMNS,
  type WebhookRow,
} from "../common.js";
import type { EmitRow, EmitWrite, EngineStatements, Outcome, OutcomeBatch } from "../types.js";

export const WAKE_CHANNEL = "continuum_webhooks_wake";

export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failure: Error | undefined;
  try {
    await client.query("BEGIN");
    const out = await fn(client);
    await client.query("COMMIT");
    return out;
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    // After a failure the connection may be the reason (silent, half-closed): discard it.
    client.release(failure);
  }
}

export function pgEngine(pool: pg.Pool): EngineStatements {
  return {
    /**
     * A whole batch in a fixed number of statements, whatever its size: subscribers for every
     * user at once, events and deliveries each in one INSERT over arrays. The payload is written
     * once, on the event row; its deliveries point at it.
     */
    emit(rows: EmitRow[], now: string, idemCutoff: string) {
      return inTransaction(pool, async (c) => {
        const users = [...new Set(rows.map((r) => r.userId))];
        const subs = await c.query<{ id: string; user_id: string; events: string }>(
          "SELECT id, user_id, events FROM webhooks WHERE user_id = ANY($1::text[]) AND active",
          [users],
        );
        const byUser = new Map<string, Array<{ id: string; events: string }>>();
        for (const w of subs.rows) {
          const list = byUser.get(w.user_id);
          if (list) list.push(w);
          else byUser.set(w.user_id, [w]);
        }
        const targets = rows.map((row) =>
          (byUser.get(row.userId) ?? []).filter((w) => subscribed(w.events, row.event)).map((w) => w.id),
        );
        const keyed = rows.filter((r) => r.idempotencyKey !== null);
        if (keyed.length > 0) {
          // A key older than the window no longer counts: free it for this new event.
          await c.query(
            `UPDATE webhook_events e SET idempotency_key = NULL
             FROM unnest($1::text[], $2::text[]) AS k(user_id, key)
             WHERE e.user_id = k.user_id AND e.idempotency_key = k.key AND e.created_at <= $3`,
            [keyed.map((r) => r.userId), keyed.map((r) => r.idempotencyKey), idemCutoff],
          );
        }
        const inserted = await c.query<{ id: string }>(
          `INSERT INTO webhook_events (id, user_id, event, payload, priority, idempotency_key, delivery_count, created_at)
           SELECT id, user_id, event, payload::jsonb, priority, idem, n, $8
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[])
             AS r(id, user_id, event, payload, priority, idem, n)
           ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id`,
          [
            rows.map((r) => r.eventId),
            rows.map((r) => r.userId),
            rows.map((r) => r.event),
            rows.map((r) => r.body),
            rows.map((r) => r.priorityName),
            rows.map((r) => r.idempotencyKey),
            targets.map((t) => t.length),
            now,
          ],
        );
        const fresh = new Set(inserted.rows.map((r) => r.id));
        const prior = new Map<string, { id: string; delivery_count: number }>();
        const dupes = rows.filter((r) => !fresh.has(r.eventId));
        if (dupes.length > 0) {
          const res = await c.query<{
            id: string;
            delivery_count: number;
            user_id: string;
            idempotency_key: string;
          }>(
            `SELECT e.id, e.delivery_count, e.user_id, e.idempotency_key FROM webhook_events e
             JOIN unnest($1::text[], $2::text[]) AS k(user_id, key)
               ON e.user_id = k.user_id AND e.idempotency_key = k.key`,
            [dupes.map((r) => r.userId), dupes.map((r) => r.idempotencyKey)],
          );
          for (const p of res.rows) prior.set(`${p.user_id}\u0000${p.idempotency_key}`, p);
        }
        const writes: EmitWrite[] = [];
        const ids: string[] = [];
        const hooks: string[] = [];
        const events: string[] = [];
        const priorities: number[] = [];
        const woken = new Set<string>();
        rows.forEach((row, i) => {
          if (!fresh.has(row.eventId)) {
            const p = prior.get(`${row.userId}\u0000${row.idempotencyKey}`);
            if (!p) throw new Error("an event was neither written nor found by its idempotency key");
            writes.push({ id: p.id, deliveries: p.delivery_count, duplicate: true, entries: [] });
            return;
          }
          const entries = targets[i]!.map((webhookId) => {
            const id = row.newDeliveryId();
            ids.push(id);
            hooks.push(webhookId);
            events.push(row.eventId);
            priorities.push(row.priority);
            woken.add(webhookId);
            return { id, webhookId, priority: row.priority };
          });
          writes.push({ id: row.eventId, deliveries: entries.length, duplicate: false, entries });
        });
        if (ids.length > 0) {
          await c.query(
            // No payload: the event row holds it, once for all its deliveries.
            `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, status, priority, attempts,
               next_retry_at, duration_ms, created_at)
             SELECT d.id, d.webhook_id, e.id, e.event, 'pending', d.priority, 0, $5, 0, $5
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS d(id, webhook_id, event_id, priority)
             JOIN webhook_events e ON e.id = d.event_id`,
            [ids, hooks, events, priorities, now],
          );
          await notify(c, [...woken]);
        }
        return writes;
      });
    },

    /** The whole batch in a fixed number of statements: arrays in, one UPDATE/INSERT each. */
    recordOutcomes(batch: OutcomeBatch) {
      return inTransaction(pool, async (c) => {
        let os = batch.outcomes;
        const parked = [...new Set(os.filter(isParked).map((o) => o.webhookId))];
        if (parked.length > 0) {
          // FOR SHARE waits for an enable in flight (its UPDATE holds the row) and blocks one
          // from starting until we commit, so the enable's resume sees what we park here.
          const res = await c.query<{ id: string; active: boolean }>(
            "SELECT id, active FROM webhooks WHERE id = ANY($1::text[]) FOR SHARE",
            [parked],
          );
          const enabled = new Set(res.rows.filter((r) => r.active).map((r) => r.id));
          if (enabled.size > 0) os = unparkWhereEnabled(os, enabled, new Date().toISOString());
        }
        const applied: Outcome[] = [];
        if (os.length > 0) {
          const updated = await c.query<{ id: string }>(
            `UPDATE webhook_deliveries d SET status = o.status, attempts = o.attempts, next_retry_at = o.next_retry_at,
               response_code = o.response_code, response_body = o.response_body, duration_ms = o.duration_ms,
               completed_at = o.completed_at, error_message = o.error_message, lease_owner = NULL, lease_until = NULL
             FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[], $7::int[],
                         $8::timestamptz[], $9::text[])
               AS o(id, status, attempts, next_retry_at, response_code, response_body, duration_ms, completed_at,
                    error_message)
             WHERE d.id = o.id AND d.lease_owner = $10
             RETURNING d.id`,
            [
              os.map((o) => o.deliveryId),
              os.map((o) => o.status),
              os.map((o) => o.attempt),
              os.map((o) => o.nextRetryAt),
              os.map((o) => o.responseCode),
              os.map((o) => o.responseBody),
              os.map((o) => o.durationMs),
              os.map((o) => o.completedAt),
              os.map((o) => o.errorMessage),
              batch.leaseOwner,
            ],
          );
          const done = new Set(updated.rows.map((r) => r.id));
          for (const o of os) if (done.has(o.deliveryId) && o.attempted) applied.push(o);
        }
        if (applied.length > 0) {
          await c.query(
            `INSERT INTO webhook_delivery_attempts (delivery_id, attempt, webhook_id, attempted_at, response_code,
               duration_ms, error_type, error_message)
             SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::int[], $6::int[],
                                  $7::text[], $8::text[])
             ON CONFLICT DO NOTHING`,
            [
              applied.map((o) => o.deliveryId),
              applied.map((o) => o.attempt),
              applied.map((o) => o.webhookId),
              applied.map((o) => o.attemptedAt),
              applied.map((o) => o.responseCode),
              applied.map((o) => o.durationMs),
              applied.map((o) => o.errorType),
              applied.map((o) => o.errorMessage),
            ],
          );
          const counters = [...summarizeCounters(applied)];
          await c.query(
            `UPDATE webhooks w SET
               failure_count = CASE WHEN k.absolute THEN k.failures ELSE w.failure_count + k.failures END,
               last_triggered_at = GREATEST(w.last_triggered_at, k.last_at),
               last_success_at = COALESCE(k.last_success_at, w.last_success_at),
               last_failure_at = COALESCE(k.last_failure_at, w.last_failure_at)
             FROM unnest($1::text[], $2::int[], $3::boolean[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[])
               AS k(id, failures, absolute, last_at, last_success_at, last_failure_at)
             WHERE w.id = k.id`,
            [
              counters.map(([id]) => id),
              counters.map(([, k]) => k.failures),
              counters.map(([, k]) => k.lastSuccessAt !== null),
              counters.map(([, k]) => k.lastAt),
              counters.map(([, k]) => k.lastSuccessAt),
              counters.map(([, k]) => k.lastFailureAt),
            ],
          );
        }
        const { breakers, disabled } = fencedChanges(batch, applied);
        for (const b of breakers) {
          await c.query("UPDATE webhooks SET breaker_state = $1, breaker_opened_at = $2 WHERE id = $3", [
            b.state,
            b.openedAt,
            b.webhookId,
          ]);
        }
        for (const d of disabled) {
          await c.query(
            "UPDATE webhooks SET active = false, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND active",
            [d.reason, d.at, d.webhookId],
          );
        }
        return applied;
      });
    },

    async webhookForDispatch(id: string) {
      const res = await pool.query<WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1`, [id]);
      return res.rows[0] ? toWebhook(res.rows[0]) : null;
    },
  };
}

/** Wake-ups carry webhook ids; a NOTIFY payload is limited to 8000 bytes, so split long lists. */
async function notify(c: pg.ClientBase, webhookIds: string[]): Promise<void> {
  for (let i = 0; i < webhookIds.length; i += 200) {
    await c.query("SELECT pg_notify($1, $2)", [WAKE_CHANNEL, webhookIds.slice(i, i + 200).join(",")]);
  }
}
