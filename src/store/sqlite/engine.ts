/**
 * The embedded mode's hot paths on raw better-sqlite3 statements: prepared once, run inside
 * synchronous transactions (nothing can interleave), many rows per commit.
 */
import type SQLite from "better-sqlite3";
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

export function sqliteEngine(sqlite: SQLite.Database): EngineStatements {
  const st = {
    findIdem: sqlite.prepare<[string, string], { id: string; delivery_count: number; created_at: string }>(
      "SELECT id, delivery_count, created_at FROM webhook_events WHERE user_id = ? AND idempotency_key = ?",
    ),
    clearIdem: sqlite.prepare<[string]>("UPDATE webhook_events SET idempotency_key = NULL WHERE id = ?"),
    subscribers: sqlite.prepare<[string], { id: string; events: string }>(
      "SELECT id, events FROM webhooks WHERE user_id = ? AND active = 1",
    ),
    insertEvent: sqlite.prepare(
      `INSERT INTO webhook_events (id, user_id, event, payload, priority, idempotency_key, delivery_count, created_at)
       VALUES (@id, @user_id, @event, @payload, @priority, @idempotency_key, @delivery_count, @created_at)`,
    ),
    insertDelivery: sqlite.prepare(
      // No payload: the event row just written holds it, once for all its deliveries.
      `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, status, priority, attempts,
         next_retry_at, duration_ms, created_at)
       VALUES (?, ?, ?, ?, 'pending', ?, 0, ?, 0, ?)`,
    ),
    insertAttempt: sqlite.prepare(
      `INSERT OR IGNORE INTO webhook_delivery_attempts (delivery_id, attempt, webhook_id, attempted_at, response_code,
         duration_ms, error_type, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    updateDelivery: sqlite.prepare(
      `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_retry_at = ?, response_code = ?, response_body = ?,
         duration_ms = ?, completed_at = ?, error_message = ?, lease_owner = NULL, lease_until = NULL
       WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ?)`,
    ),
    webhookSuccess: sqlite.prepare(
      `UPDATE webhooks SET failure_count = ?, last_triggered_at = max(coalesce(last_triggered_at, ''), ?),
         last_success_at = ? WHERE id = ?`,
    ),
    webhookFailure: sqlite.prepare(
      `UPDATE webhooks SET failure_count = failure_count + ?, last_triggered_at = max(coalesce(last_triggered_at, ''), ?),
         last_failure_at = ? WHERE id = ?`,
    ),
    webhookMixed: sqlite.prepare(
      `UPDATE webhooks SET failure_count = ?, last_triggered_at = max(coalesce(last_triggered_at, ''), ?),
         last_success_at = ?, last_failure_at = ? WHERE id = ?`,
    ),
    breaker: sqlite.prepare(`UPDATE webhooks SET breaker_state = ?, breaker_opened_at = ? WHERE id = ?`),
    disable: sqlite.prepare(
      `UPDATE webhooks SET active = 0, disabled_reason = ?, updated_at = ? WHERE id = ? AND active = 1`,
    ),
    lockOwner: sqlite.prepare<[], { owner: string }>("SELECT owner FROM engine_lock WHERE id = 1"),
    isActive: sqlite.prepare<[string], { active: number }>("SELECT active FROM webhooks WHERE id = ?"),
    webhook: sqlite.prepare<[string], WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?`),
  };

  const emitTx = sqlite.transaction((rows: EmitRow[], now: string, idemCutoff: string) => {
    const writes: EmitWrite[] = [];
    // A batch is usually one producer's events for a few users: read each user's webhooks once.
    const byUser = new Map<string, Array<{ id: string; events: string }>>();
    for (const row of rows) {
      if (row.idempotencyKey !== null) {
        const prior = st.findIdem.get(row.userId, row.idempotencyKey);
        if (prior && prior.created_at > idemCutoff) {
          writes.push({ id: prior.id, deliveries: prior.delivery_count, duplicate: true, entries: [] });
          continue;
        }
        if (prior) st.clearIdem.run(prior.id);
      }
      let hooks = byUser.get(row.userId);
      if (!hooks) {
        hooks = st.subscribers.all(row.userId);
        byUser.set(row.userId, hooks);
      }
      const targets = hooks.filter((w) => subscribed(w.events, row.event)).map((w) => w.id);
      st.insertEvent.run({
        id: row.eventId,
        user_id: row.userId,
        event: row.event,
        payload: row.body,
        priority: row.priorityName,
        idempotency_key: row.idempotencyKey,
        delivery_count: targets.length,
        created_at: now,
      });
      const entries = [];
      for (const webhookId of targets) {
        const id = row.newDeliveryId();
        st.insertDelivery.run(id, webhookId, row.eventId, row.event, row.priority, now, now);
        entries.push({ id, webhookId, priority: row.priority });
      }
      writes.push({ id: row.eventId, deliveries: targets.length, duplicate: false, entries });
    }
    return writes;
  });

  const outcomeTx = sqlite.transaction((batch: OutcomeBatch) => {
    const applied: Outcome[] = [];
    if (batch.requireEngineLock && st.lockOwner.get()?.owner !== batch.leaseOwner) return applied;
    const parked = new Set(batch.outcomes.filter(isParked).map((o) => o.webhookId));
    const enabled = new Set([...parked].filter((id) => st.isActive.get(id)?.active === 1));
    const outcomes =
      enabled.size > 0
        ? unparkWhereEnabled(batch.outcomes, enabled, new Date().toISOString())
        : batch.outcomes;
    for (const o of outcomes) {
      const changed = st.updateDelivery.run(
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
      ).changes;
      // Another claimer took over after our lease ran out: its record of the delivery wins.
      if (changed === 0 || !o.attempted) continue;
      st.insertAttempt.run(
        o.deliveryId,
        o.attempt,
        o.webhookId,
        o.attemptedAt,
        o.responseCode,
        o.durationMs,
        o.errorType,
        o.errorMessage,
      );
      applied.push(o);
    }
    for (const [webhookId, c] of summarizeCounters(applied)) {
      if (c.lastFailureAt === null) st.webhookSuccess.run(c.failures, c.lastAt, c.lastSuccessAt, webhookId);
      else if (c.lastSuccessAt === null)
        st.webhookFailure.run(c.failures, c.lastAt, c.lastFailureAt, webhookId);
      else st.webhookMixed.run(c.failures, c.lastAt, c.lastSuccessAt, c.lastFailureAt, webhookId);
    }
    const { breakers, disabled } = fencedChanges(batch, applied);
    for (const b of breakers) st.breaker.run(b.state, b.openedAt, b.webhookId);
    for (const d of disabled) st.disable.run(d.reason, d.at, d.webhookId);
    return applied;
  });

  return {
    emit: async (rows, now, idemCutoff) => emitTx(rows, now, idemCutoff),
    recordOutcomes: async (batch) => outcomeTx(batch),
    async webhookForDispatch(id) {
      const row = st.webhook.get(id);
      return row ? toWebhook(row) : null;
    },
  };
}
