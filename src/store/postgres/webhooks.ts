/** Every statement on `webhooks` in PostgreSQL, except the engine's counters (engine.ts). */
import type pg from "pg";
import {
  isUniqueViolation,
  jsonOrNull,
  toWebhook,
  WEBHOOK_COLUMNS,
  type WebhookRow,
  webhookPatchColumns,
} from "../common.js";
import { DuplicateWebhookError, type WebhookStatements } from "../types.js";

export function pgWebhooks(pool: pg.Pool): WebhookStatements {
  const duplicate = (err: unknown) =>
    isUniqueViolation(err) ? new DuplicateWebhookError("a webhook for this URL already exists") : err;
  const one = async (text: string, values: unknown[]) => {
    const res = await pool.query<WebhookRow>(text, values);
    return res.rows[0] ? toWebhook(res.rows[0]) : null;
  };
  return {
    async insert(w) {
      try {
        const row = await one(
          `INSERT INTO webhooks (id, user_id, url, secret, events, active, name, description, metadata, retry_schedule,
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $11)
           RETURNING ${WEBHOOK_COLUMNS}`,
          [
            w.id,
            w.userId,
            w.url,
            w.secret,
            w.events.join(","),
            w.active !== false,
            w.name ?? null,
            w.description ?? null,
            jsonOrNull(w.metadata),
            jsonOrNull(w.retrySchedule),
            w.now,
          ],
        );
        return row!;
      } catch (err) {
        throw duplicate(err);
      }
    },
    get: (id, userId) =>
      userId === undefined
        ? one(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1`, [id])
        : one(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND user_id = $2`, [id, userId]),
    async list(userId, page) {
      const res = await pool.query<WebhookRow>(
        `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id > $1 AND ($2::text IS NULL OR user_id = $2)
         ORDER BY id LIMIT $3`,
        [page.after ?? "", userId ?? null, page.limit],
      );
      return res.rows.map(toWebhook);
    },
    async update(id, userId, patch, now) {
      const set = webhookPatchColumns(patch, (v) => v);
      set.push(["updated_at", now]);
      const values = set.map(([, v]) => v);
      const assignments = set.map(([c], i) => `${c} = $${i + 1}${c === "metadata" ? "::jsonb" : ""}`);
      values.push(id, userId ?? null);
      try {
        return await one(
          `UPDATE webhooks SET ${assignments.join(", ")}
           WHERE id = $${values.length - 1} AND ($${values.length}::text IS NULL OR user_id = $${values.length})
           RETURNING ${WEBHOOK_COLUMNS}`,
          values,
        );
      } catch (err) {
        throw duplicate(err);
      }
    },
    async delete(id, userId) {
      const res = await pool.query(
        "DELETE FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)",
        [id, userId ?? null],
      );
      return (res.rowCount ?? 0) > 0;
    },
  };
}
